#!/usr/bin/env bash
# setup.sh PACKDIR -- on the GPU machine (run, don't source): unpacks what bench/gpu_tensorcore/device_pack.sh packed into
# $HERON_SITE (default /tmp/heron_site) and writes $HERON_SITE/env.sh (PYTHONPATH, LD_LIBRARY_PATH when
# libcudart.so.13 is not on the loader's path). A no-op when already done from the same pack.
set -euo pipefail
P=$(cd "${1:?usage: setup.sh PACKDIR}" && pwd)
DEST=${HERON_SITE:-/tmp/heron_site}
PY=${PYTHON:-python3}
t0=$(date +%s)
if ! cmp -s "$DEST/.ok" "$P/MANIFEST.txt" 2> /dev/null; then
  [ -f "$P/tvm_pkg.tar.xz" ] || { echo "[setup] no TVM in $DEST: carry the pack's TVM archives first" >&2; exit 2; }
  rm -rf "$DEST"; mkdir -p "$DEST"
  tar -C "$DEST" -xJf "$P/tvm_pkg.tar.xz" &
  xz -T0 -dc "$P/tvm_compiler.so.xz" > "$DEST/libtvm_compiler.so.tmp" &
  wait
  mv "$DEST/libtvm_compiler.so.tmp" "$DEST/tvm/lib/libtvm_compiler.so"
  chmod +x "$DEST"/tvm/lib/*.so
  cp "$P/MANIFEST.txt" "$DEST/.ok"
fi
[ ! -f "$P/tune.tar.xz" ] || tar -C "$DEST" -xJf "$P/tune.tar.xz"  # a second call: OR-Tools, LightGBM
if [ -f "$P/site.tar.xz" ]; then  # Heron and its dependencies: always the pack's
  rm -rf "$DEST/heron_core" "$DEST/heron_gpu_tensorcore"
  tar -C "$DEST" -xJf "$P/site.tar.xz"
fi
LDP=$("$PY" -c '
import ctypes, glob, os, site
try:
    ctypes.CDLL("libcudart.so.13"); print("")
except OSError:
    c = ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"]
    for sp in site.getsitepackages():
        c += glob.glob(sp + "/nvidia/cu13/lib") + glob.glob(sp + "/nvidia/cuda_runtime/lib")
    print(next((d for d in c if os.path.exists(d + "/libcudart.so.13")), ""))')
{
  echo "export PYTHONPATH=$DEST\${PYTHONPATH:+:\$PYTHONPATH} PYTHONUNBUFFERED=1 TVM_CUDA_COMPILE_MODE=nvcc"
  [ -z "$LDP" ] || echo "export LD_LIBRARY_PATH=$LDP\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
} > "$DEST/env.sh"
echo "[setup] $DEST ready in $(( $(date +%s) - t0 )) s"
