#!/usr/bin/env bash
# bench/device.sh: every procedure that runs on the device machine (the GPU host; its CPU has AMX), one entry point.
# Run from the repository root: `bash bench/device.sh PROCEDURE [ARGS...]`; results and logs go to $OUT.
# The device has no network and no OR-Tools; TVM comes from the bundle in .gpu/ (see ../shared/gpu/README.md).
# One transfer carries at most 64 MiB, so some procedures take two calls on the same warm machine.
#
# Target amx (bench/cpu_amx):
#   amx-setup [pack]             TVM in /tmp/tvm_site_amx from the bundle (then `source /tmp/tvm_site_amx/env.sh`);
#                                carry .gpu/tvm_compiler.so.xz .gpu/tvm_pkg.tar.xz .gpu/amx/amx_site.tar.xz
#                                .gpu/amx/tvm_ffi.tar.xz (+ the plans). `pack` (here, once): .gpu/amx/tvm_ffi.tar.xz
#   amx-run PLAN TAG TIMEOUT [bench/cpu_amx/amx.py run options]
#                                installs heron + cpu_dlboost under /tmp (KEEP=1 reuses this call's install) and
#                                measures a plan of `bench/cpu_amx/amx.py plan` (results: $OUT/amx_*_TAG.*)
#   amx-peak TAG TIMEOUT [bench/cpu_amx/amx_peak.py options]       (output: $OUT/amx_peak_TAG.jsonl)
#   amx-tune pack | "HERON ARGS" ...
#                                `heron tune` itself on the AMX CPU: call 1 `amx-setup`, call 2 (carry .gpu/tune
#                                .gpu/amx/amx_site.tar.xz) this, one heron command line per argument
#                                (records in $OUT/amx_tune.db). `pack` (here, once): .gpu/tune/tune_site.tar.xz
# Target tensorcore (bench/gpu_tensorcore):
#   tensorcore-install           call 1: carries .wheels and .gpu/tc (plans); installs dependencies + heron in /tmp
#   tensorcore PLAN STEM [TUNING_DEADLINE_S]
#                                call 2: carries the TVM bundle; runs bench/gpu_tensorcore/gpu_tensorcore.py run
#                                (PLAN "-" = none). SMOKE=1: the plugin's GPU tests first; TUNE=1 (or quick):
#                                `heron tune --target tensorcore` end to end, then `heron best`
#   tensorcore-pack-setup PACKDIR
#                                the sm_90a (wgmma) runs: TVM, dependencies and Heron from a pack that
#                                bench/gpu_tensorcore/device_pack.sh made here, unpacked into /tmp/heron_site (then
#                                `source /tmp/heron_site/env.sh`); two calls, as that script's header says
#   tensorcore-pack-run PACKDIR PLAN STEM DEADLINE_S
#                                call 2 of those (carry the pack's site.tar.xz, tune.tar.xz, MANIFEST.txt, setup.sh,
#                                bench and the plan): setup, then gpu_tensorcore.py run on 15 build workers
# Runners (bench/runners):
#   runner-scaling PACKDIR TAG [bench/runners/scaling.py options]
#                                after tensorcore-pack-setup on the same warm machine (its Heron + CPU plugins + OR-Tools),
#                                carrying PACKDIR/ray.tar.xz (RAY=1 device_pack.sh) and device.sh (a call removes the carried
#                                paths it does not name; /tmp stays): build throughput of the `local` and
#                                `ray` runners against build workers on the device's 16-core CPU (`local` as TAG_local,
#                                kept if Ray fails, then `ray` as TAG; RAY_TIMEOUT_S bounds the run with Ray)
#
# A new device procedure is one more function below and one line in this header and in bench/README.md.
set -u
OUT=${OUT:-device_out}
mkdir -p "$OUT"
t0=$(date +%s)

amx_setup() (
  set -euo pipefail
  if [ "${1:-}" = pack ]; then
    tmp=$(mktemp -d)
    python3 -m zipfile -e .gpu/apache_tvm_ffi-*.whl "$tmp"
    tar -C "$tmp" -cf - . | xz -9e -T1 > .gpu/amx/tvm_ffi.tar.xz
    rm -rf "$tmp"
    ls -l .gpu/amx/tvm_ffi.tar.xz
    exit 0
  fi
  DEST=/tmp/tvm_site_amx
  if [ ! -f $DEST/.ok ]; then
    rm -rf $DEST && mkdir -p $DEST
    tar -C $DEST -xJf .gpu/amx/tvm_ffi.tar.xz
    tar -C $DEST -xJf .gpu/tvm_pkg.tar.xz
    xz -dc .gpu/tvm_compiler.so.xz > $DEST/tvm/lib/libtvm_compiler.so
    chmod +x $DEST/tvm/lib/*.so
    touch $DEST/.ok
  fi
  python3 -c 'import ml_dtypes, typing_extensions' || echo "WARNING: ml_dtypes / typing_extensions missing"
  echo "export PYTHONPATH=$DEST\${PYTHONPATH:+:\$PYTHONPATH}" > $DEST/env.sh
  echo "[amx-setup] $(( $(date +%s) - t0 )) s"
)

# heron + the cpu_dlboost plugin (and pydantic & co., which that machine lacks) under /tmp
amx_install() {
  if [ ! -d /tmp/site/pydantic ]; then mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/amx/amx_site.tar.xz; fi
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
  if [ "${KEEP:-0}" != 1 ] || [ ! -d /tmp/heron/heron_core ]; then
    rm -rf /tmp/heron && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/heron . plugins/cpu_dlboost >/dev/null 2>&1 || exit 4
  fi
  export PYTHONPATH=/tmp/heron:$PYTHONPATH PYTHONUNBUFFERED=1
  echo "== setup $(( $(date +%s) - t0 )) s; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus; load $(cat /proc/loadavg)"
}

amx_run() (
  exec > >(tee -a "$OUT/amx_device_log_$2.txt") 2>&1
  amx_install
  timeout "$3" python3 bench/cpu_amx/amx.py run "$1" --out "$OUT" --parallel 15 --tag "_$2" "${@:4}"
  echo "== $2 done $(( $(date +%s) - t0 )) s, rc $?"
)

amx_peak() (
  exec > >(tee -a "$OUT/amx_device_log_$1.txt") 2>&1
  amx_install
  timeout "$2" python3 bench/cpu_amx/amx_peak.py "${@:3}" | tee "$OUT/amx_peak_$1.jsonl"
  echo "== $1 done $(( $(date +%s) - t0 )) s"
)

amx_tune() (
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
  [ -f /tmp/tvm_site_amx/.ok ] || { echo "no TVM in /tmp/tvm_site_amx: run amx-setup in the call just before"; exit 3; }
  mkdir -p /tmp/tune_site /tmp/site && tar -C /tmp/tune_site -xJf .gpu/tune/tune_site.tar.xz && tar -C /tmp/site -xJf .gpu/amx/amx_site.tar.xz
  rm -rf /tmp/heron && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/heron . plugins/cpu_dlboost || exit 4
  export PYTHONPATH=/tmp/heron:/tmp/tvm_site_amx:/tmp/site:/tmp/tune_site PYTHONUNBUFFERED=1
  echo "== setup $(( $(date +%s) - t0 )) s; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus"
  db=$(cd "$OUT" && pwd)/amx_tune.db
  cd /tmp
  for cmd in "$@"; do
    echo "== heron $cmd"
    # shellcheck disable=SC2086
    timeout 200 python3 -m heron_core.cli $cmd --db "$db" --quiet 2>&1 | tail -4
  done
  echo "== done $(( $(date +%s) - t0 )) s"
)

# the wheels of .wheels (OR-Tools included), or else SITE, a tar.xz of pydantic & co. (no OR-Tools); heron; the plans
tensorcore_install() {
  mkdir -p /tmp/site_tc
  if ls .wheels/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-deps --no-index --target /tmp/site_tc .wheels/*.whl || exit 3
  else
    tar -C /tmp/site_tc -xJf "${SITE:-.gpu/amx/amx_site.tar.xz}"
  fi
  PYTHONPATH=/tmp/site_tc python3 -m pip install -q --no-deps --no-build-isolation --no-index \
    --target /tmp/heron_tc . plugins/gpu_tensorcore || exit 3
  mkdir -p /tmp/tc_plans && { cp .gpu/tc/* /tmp/tc_plans/ 2> /dev/null || true; }
  echo "== installed in $(( $(date +%s) - t0 )) s: $(ls /tmp/site_tc | grep -c dist-info) distributions; plans: $(ls /tmp/tc_plans)"
}

tensorcore() (
  bash .gpu/setup_on_device.sh .gpu > "$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; exit 2; }
  source /tmp/tvm_site/env.sh
  [ -d /tmp/heron_tc ] || tensorcore_install
  export PYTHONPATH=/tmp/heron_tc:/tmp/site_tc:$PYTHONPATH PYTHONUNBUFFERED=1 TVM_CUDA_COMPILE_MODE=nvcc
  export PATH=/tmp/heron_tc/bin:$PATH
  echo "== setup $(( $(date +%s) - t0 )) s"
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader

  if [ "${SMOKE:-0}" = 1 ]; then
    timeout "${SMOKE_S:-200}" python3 -m pytest -q -p no:cacheprovider plugins/gpu_tensorcore/tests/test_tensorcore.py \
      -k "${SMOKE_K:-on_the_gpu}" 2>&1 | tail -15 | tee "$OUT/smoke.log"
    grep -q " passed" "$OUT/smoke.log" && ! grep -q -E " failed| error" "$OUT/smoke.log" || { echo "SMOKE FAILED"; SKIP_PLAN=1; }
    echo "== smoke done $(( $(date +%s) - t0 )) s"
  fi

  if [ "${1:--}" != - ] && [ "${SKIP_PLAN:-0}" != 1 ]; then
    plan=$1; [ -f "$plan" ] || plan=/tmp/tc_plans/$(basename "$1")
    python3 bench/gpu_tensorcore/gpu_tensorcore.py run "$plan" --out "$OUT" --stem "$2" --parallel $(( $(nproc) - 1 )) \
      --deadline "${3:-1000000}" 2>&1 | grep -v Warning | tee "$OUT/$2.log" | grep -v '^{' | tail -40
    echo "cases: $(grep -c '^{' "$OUT/$2.log"); done in $(( $(date +%s) - t0 )) s"
  fi

  if [ "${TUNE:-0}" != 0 ]; then
    db=$OUT/heron_tune.db
    log=$OUT/heron_tune_h200.log
    tune() { echo "\$ heron tune --target tensorcore $*"; timeout 240 heron tune --target tensorcore "$@" --db "$db" --quiet 2>&1; }
    {
      heron plugins 2>&1 | grep -E "tensorcore|cannot"
      tune --trials "${TUNE_TRIALS:-16}"                       # the default case: gemm 64x64x64, fp16 (the target's default)
      tune --trials "${TUNE_TRIALS:-16}"                       # the same again: resumes, measures nothing new
      if [ "$TUNE" != quick ]; then
        tune --trials "${TUNE_MORE:-32}"                       # a larger budget: resumes and measures the difference
        tune --op gemm --shape M=1024,K=1024,N=1024 --trials "${TUNE_TRIALS:-16}"
      fi
      echo "\$ heron best"; heron best --db "$db" 2>&1
    } | tee "$log"
    echo "== tune done $(( $(date +%s) - t0 )) s"
  fi
)

tensorcore_pack_run() (
  bash bench/gpu_tensorcore/device_setup.sh "$1" || exit 2
  source /tmp/heron_site/env.sh
  nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
  python3 "$1/bench/gpu_tensorcore.py" run "$2" --out "$OUT" --stem "$3" --parallel $(( $(nproc) - 1 )) --deadline "$4" 2>&1 \
    | grep -v Warning | tee "$OUT/$3.log" | grep -v '^{' | tail -30
  echo "cases: $(grep -c '^{' "$OUT/$3.log"); done in $(( $(date +%s) - t0 )) s"
)

runner_scaling() (
  local site=${HERON_SITE:-/tmp/heron_site}
  [ -f "$site/env.sh" ] || { echo "no $site: run tensorcore-pack-setup in the call just before"; exit 3; }
  source "$site/env.sh"
  if [ -f "$1/ray.tar.xz" ]; then
    mkdir -p /tmp/ray_site && tar -C /tmp/ray_site -xJf "$1/ray.tar.xz" && export PYTHONPATH=$PYTHONPATH:/tmp/ray_site
  fi
  echo "== $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus; flags: $(grep -m1 -o -w -E 'amx_int8|amx_bf16|avx512_vnni' /proc/cpuinfo | sort -u | xargs)"
  # `local` alone first (kept if Ray then fails or hangs), then `ray` (the device lacks tornado for rpc)
  taskset -c 0-15 python3 bench/runners/scaling.py --tag "$2_local" --out "$OUT" --skip ray rpc kill "${@:3}" 2>&1 \
    | tee "$OUT/runners_$2_local.log" | tail -12
  if python3 -c "import ray" 2> "$OUT/ray_import.log"; then
    timeout "${RAY_TIMEOUT_S:-420}" taskset -c 0-15 python3 bench/runners/scaling.py --tag "$2" --out "$OUT" --skip local rpc "${@:3}" 2>&1 \
      | tee "$OUT/runners_$2.log" | tail -12
  else
    echo "Ray does not import (ray_import.log): local runner only"
  fi
  echo "== done $(( $(date +%s) - t0 )) s"
)

procedure=${1:-help}
[ $# -gt 0 ] && shift
case $procedure in
  amx-setup) amx_setup "$@" ;;
  amx-run) amx_run "$@" ;;
  amx-peak) amx_peak "$@" ;;
  amx-tune) amx_tune "$@" ;;
  tensorcore-install) tensorcore_install ;;
  tensorcore) tensorcore "$@" ;;
  tensorcore-pack-setup) bash bench/gpu_tensorcore/device_setup.sh "$@" ;;
  tensorcore-pack-run) tensorcore_pack_run "$@" ;;
  runner-scaling) runner_scaling "$@" ;;
  *) sed -n '2,/^set -u/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; [ "$procedure" = help ] || exit 2 ;;
esac
