#!/usr/bin/env bash
# TVM for the AMX runs on the device machine, in /tmp/tvm_site_amx, from the bundle of .gpu/ (see .gpu/README.md):
# like .gpu/setup_on_device.sh, but tvm-ffi comes from an xz tarball of its wheel's contents (1.1 MB smaller than the
# wheel), which keeps the carried files under the 64 MiB limit next to .gpu/amx/amx_site.tar.xz; no CUDA set-up.
#   bash bench/amx_setup_device.sh pack    # here, once: .gpu/amx/tvm_ffi.tar.xz from .gpu/apache_tvm_ffi-*.whl
#   bash bench/amx_setup_device.sh && source /tmp/tvm_site_amx/env.sh     # on the device
# carry: .gpu/tvm_compiler.so.xz .gpu/tvm_pkg.tar.xz .gpu/amx/amx_site.tar.xz .gpu/amx/tvm_ffi.tar.xz (+ the plans)
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
t0=$(date +%s)
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
echo "[amx_setup_device] $(( $(date +%s) - t0 )) s"
