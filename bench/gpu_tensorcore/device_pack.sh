#!/usr/bin/env bash
# bench/gpu_tensorcore/device_pack.sh OUTDIR -- on the CPU machine, from the root of a Heron checkout: pack what the
# offline GPU machine (Python 3.12, PyTorch, nvcc; no TVM, no network) needs to build and measure Heron's
# `tensorcore` kernels into OUTDIR:
#   tvm_compiler.so.xz, tvm_pkg.tar.xz,  TVM 0.27 (../shared/gpu/make_bundle.sh's archives, 58.4 MB; its wheels are
#   MANIFEST.txt                         left out: the device has ml_dtypes and typing_extensions)
#   site.tar.xz                          ONE archive of the pure-Python dependencies unpacked for CPython 3.12
#                                        (pydantic + pydantic-core, annotated-types, typing-inspection, pebble,
#                                        platformdirs, apache-tvm-ffi 0.1.14.post0) and Heron (core, tensorcore,
#                                        search_ga, model_gbdt, with their entry points); 3.3 MB
#   tune.tar.xz (TUNE=1)                 OR-Tools reduced to CP-SAT, LightGBM, immutabledict, protobuf: what
#                                        `heron tune` (CP-SAT spaces, cga, gbdt) needs beyond the device's packages
#   ray.tar.xz (RAY=1)                   Ray 2.60 for a local instance (18 MB of the 79 MB wheel: no jars, dashboard
#                                        client, libraries; binaries stripped) + jsonschema, which the device lacks:
#                                        bench/runners/scaling.py on the device's CPU (bench/device.sh runner-scaling)
#   bench/gpu_tensorcore/gpu_tensorcore.py, setup.sh    this checkout's benchmark, and the unpacking step for the device
# TVM + site.tar.xz + the ~3.7 MB tracked tree are just over the 64 MiB one call carries, so (README):
#   echo /.hopper/ >> .git/info/exclude; TUNE=1 bash bench/gpu_tensorcore/device_pack.sh .hopper/pack
#   call 1, carry .hopper/pack/{tvm_compiler.so.xz,tvm_pkg.tar.xz,MANIFEST.txt,setup.sh}:
#     bash .hopper/pack/setup.sh .hopper/pack                      (TVM -> /tmp/heron_site, 6 s)
#   call 2 at once (the machine stays warm 30 s), carry .hopper/pack/{site.tar.xz,MANIFEST.txt,setup.sh,bench}
#   (+ tune.tar.xz for heron tune) and the plans:
#     bash .hopper/pack/setup.sh .hopper/pack && source /tmp/heron_site/env.sh &&
#     python3 .hopper/pack/bench/gpu_tensorcore.py run PLAN --out $OUT ...   (or: python3 -m heron_core.cli tune ...)
# Points are planned here (bench/gpu_tensorcore/gpu_tensorcore.py plan, CP-SAT). Reruns keep the TVM parts; site.tar.xz is
# rebuilt each time (Heron changes). NO_TVM=1 skips TVM; TVM_BUNDLE=DIR takes an existing make_bundle output.
set -euo pipefail
OUT=${1:?usage: bench/gpu_tensorcore/device_pack.sh OUTDIR}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SHARED=${HERON_GPU_SHARED:-$ROOT/../shared/gpu}
[ -f "$SHARED/make_bundle.sh" ] || SHARED=/work/shared/gpu
CACHE=${TVM_BUNDLE_CACHE:-/tmp/tvm_bundle_cache}
PY=${PYTHON:-python3}
mkdir -p "$OUT/bench" "$CACHE/deps"

# 1. the pure-Python dependencies (wheels for CPython 3.12 / manylinux x86-64) and Heron, one archive
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d "$CACHE/deps" pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
  pebble==5.2.3 platformdirs==4.14.9 apache-tvm-ffi==0.1.14.post0
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
for w in "$CACHE"/deps/*.whl; do "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$SITE"; done
"$PY" -m pip install -q --no-deps --no-compile --target "$SITE" "$ROOT" "$ROOT/plugins/gpu_tensorcore" \
  "$ROOT/plugins/search_ga" "$ROOT/plugins/model_gbdt" "$ROOT/plugins/cpu_dlboost" "$ROOT/plugins/runner_ray"
# what only building C++ against tvm-ffi needs, its stubs, pydantic.v1, type stubs, SBOMs,
# symbols: ~1.2 MiB of the 64 (TVM takes 60.4 MiB, Heron's tracked tree ~3.2)
rm -rf "$SITE/bin" "$SITE"/tvm_ffi/{3rdparty,src,cython,include,stub} \
  "$SITE/pydantic/v1" "$SITE"/*.dist-info/sboms "$SITE"/*.dist-info/licenses
find "$SITE" -name "*.pyi" -delete
find "$SITE" -name "*.so" -type f -exec strip --strip-unneeded {} +
find "$SITE" -name __pycache__ -type d -prune -exec rm -rf {} +
tar -C "$SITE" -cf - . | xz -9e -T0 > "$OUT/site.tar.xz"
# 2. optional (TUNE=1), a second archive for a second call: OR-Tools reduced to CP-SAT, LightGBM (GBDT model),
#    immutabledict and protobuf -- what `heron tune` needs beyond the device's own packages
if [ "${TUNE:-0}" = 1 ]; then
  mkdir -p "$CACHE/tune" && TSITE=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    -d "$CACHE/tune" ortools==9.15.6755 lightgbm==4.7.0 immutabledict==4.3.1 protobuf==6.33.6
  for w in "$CACHE"/tune/*.whl; do "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$TSITE"; done
  (cd "$TSITE/ortools" && rm -rf algorithms bop constraint_solver glop graph linear_solver math_opt packing pdlp scheduling \
    service set_cover routing)
  find "$TSITE" -name "*.so*" -type f -exec strip --strip-unneeded {} + 2> /dev/null || true
  tar -C "$TSITE" -cf - . | xz -9 -T0 > "$OUT/tune.tar.xz" && rm -rf "$TSITE"
fi
# 3. optional (RAY=1), Ray for a local instance (its own call: bench/device.sh runner-scaling)
if [ "${RAY:-0}" = 1 ]; then
  mkdir -p "$CACHE/ray" && RSITE=$(mktemp -d)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    -d "$CACHE/ray" ray==2.60.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==0.30.0
  for w in "$CACHE"/ray/*.whl; do "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$RSITE"; done
  (cd "$RSITE/ray" && rm -rf jars rllib serve data llm tune train workflow dashboard/client)
  strip --strip-unneeded "$RSITE"/ray/_raylet.so "$RSITE"/ray/core/src/ray/raylet/raylet "$RSITE"/ray/core/src/ray/gcs/gcs_server
  chmod +x "$RSITE"/ray/core/src/ray/raylet/raylet "$RSITE"/ray/core/src/ray/gcs/gcs_server  # zipfile drops modes
  tar -C "$RSITE" -cf - . | xz -9 -T0 > "$OUT/ray.tar.xz" && rm -rf "$RSITE"
fi
cp "$ROOT/bench/gpu_tensorcore/gpu_tensorcore.py" "$OUT/bench/"
cp "$ROOT/bench/gpu_tensorcore/device_setup.sh" "$OUT/setup.sh"
cp "$ROOT/bench/device.sh" "$OUT/device.sh"  # this checkout's procedures, where the device gets another tree
[ "${NO_TVM:-0}" = 1 ] || {
# 4. TVM: make_bundle.sh's two archives (its cache keeps reruns cheap; TVM_BUNDLE: an existing bundle)
BUNDLE=${TVM_BUNDLE:-$CACHE/bundle}
bash "$SHARED/make_bundle.sh" "$BUNDLE" > "$CACHE/bundle.log" 2>&1 || { cat "$CACHE/bundle.log"; exit 1; }
for f in tvm_compiler.so.xz tvm_pkg.tar.xz MANIFEST.txt; do
  [ "$OUT/$f" -nt "$BUNDLE/$f" ] || cp "$BUNDLE/$f" "$OUT/$f"
done
}
du -sh "$OUT"/* | sort -h
echo "[pack] $(du -sm "$OUT" | cut -f1) MiB in $OUT (with the tracked tree, keep it under 64 MiB)"
