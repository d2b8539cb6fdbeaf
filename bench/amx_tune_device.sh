#!/usr/bin/env bash
# `heron tune` on the AMX machine (the GPU host's CPU), which has no OR-Tools and no network.
# TVM (60 MiB) and OR-Tools do not fit one carry (64 MiB), so it takes two calls on the same warm machine
# (it is given back after ~30 s idle; issue the second call right after the first):
#   bash bench/amx_tune_device.sh pack     # here, once: .gpu/tune/tune_site.tar.xz (OR-Tools' CP-SAT, pandas, typer, rich...)
#   call 1, carry .gpu/tvm_compiler.so.xz .gpu/tvm_pkg.tar.xz .gpu/amx/tvm_ffi.tar.xz:   bash bench/amx_setup_device.sh
#   call 2, carry .gpu/tune .gpu/amx/amx_site.tar.xz:
#     bash bench/amx_tune_device.sh "tune --target amx --op gemm" "tune --target amx --op conv2d --trials 32" ...
# Each argument is one heron command line (records in $OUT/amx_tune.db, PASS/FAIL lines in the log).
set -u
if [ "${1:-}" = pack ]; then
  set -e
  tmp=$(mktemp -d) && mkdir -p .gpu/tune "$tmp/site"
  get() { pip download -q -d "$tmp" --python-version 3.12 --only-binary=:all: --platform manylinux_2_28_x86_64 "$@"; }
  get ortools==9.15.6755 rich pluggy six shellingham annotated-doc
  get --no-deps typer==0.29.2  # (its pydantic comes with .gpu/amx/amx_site.tar.xz)
  for w in "$tmp"/*.whl; do case $w in *numpy-*) ;; *) python3 -m zipfile -e "$w" "$tmp/site" ;; esac; done
  # only CP-SAT is used: drop OR-Tools' other solvers' Python packages, and debug symbols
  (cd "$tmp/site/ortools" && rm -rf algorithms bop constraint_solver glop graph linear_solver math_opt packing pdlp scheduling service set_cover)
  rm -rf "$tmp/site/pandas/tests" && find "$tmp/site" -name "*.so*" -type f -exec strip --strip-unneeded {} +
  tar -C "$tmp/site" -cf - . | xz -9 -T0 > .gpu/tune/tune_site.tar.xz && rm -rf "$tmp" && ls -l .gpu/tune/tune_site.tar.xz
  exit 0
fi
[ -f /tmp/tvm_site_amx/.ok ] || { echo "no TVM in /tmp/tvm_site_amx: run bench/amx_setup_device.sh in the call just before"; exit 3; }
t0=$(date +%s)
mkdir -p /tmp/tune_site /tmp/site && tar -C /tmp/tune_site -xJf .gpu/tune/tune_site.tar.xz && tar -C /tmp/site -xJf .gpu/amx/amx_site.tar.xz
rm -rf /tmp/heron && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/heron . plugins/cpu_dlboost || exit 4
export PYTHONPATH=/tmp/heron:/tmp/tvm_site_amx:/tmp/site:/tmp/tune_site PYTHONUNBUFFERED=1
echo "== setup $(( $(date +%s) - t0 )) s; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus"
OUT=${OUT:-amx_out} && mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd /tmp
for cmd in "$@"; do
  echo "== heron $cmd"
  # shellcheck disable=SC2086
  timeout 200 python3 -m heron_core.cli $cmd --db "$OUT/amx_tune.db" --quiet 2>&1 | tail -4
done
echo "== done $(( $(date +%s) - t0 )) s"
