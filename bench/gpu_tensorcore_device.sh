#!/usr/bin/env bash
# On the GPU machine, from the repository root (the TVM bundle in .gpu, ../shared/gpu/README.md):
#   bash bench/gpu_tensorcore_device.sh PLAN STEM [TUNING_DEADLINE_S]
# Results (JSON, markdown, chart, log) go to $OUT. heron_core needs pure-Python wheels the machine
# lacks (pydantic, pydantic_core, annotated_types, typing_inspection, pebble, platformdirs): SITE, a
# tar.xz of what `pip install --target` makes of them (default .gpu/amx/amx_site.tar.xz, made for
# the AMX runs). The bundle and SITE together exceed one 64 MiB transfer: a first call that carries
# only SITE and the plan can unpack it, install Heron (the `if` below) and copy the plan to /tmp;
# a second call, while the machine is still warm, carries the bundle and runs this script.
set -u
t0=$(date +%s)
bash .gpu/setup_on_device.sh .gpu > "$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; exit 2; }
source /tmp/tvm_site/env.sh
if [ ! -d /tmp/heron_tc ]; then
  mkdir -p /tmp/site_tc && tar -C /tmp/site_tc -xJf "${SITE:-.gpu/amx/amx_site.tar.xz}"
  PYTHONPATH=/tmp/site_tc:$PYTHONPATH python3 -m pip install -q --no-deps --no-build-isolation --no-index \
    --target /tmp/heron_tc . plugins/gpu_tensorcore || exit 3
fi
export PYTHONPATH=/tmp/heron_tc:/tmp/site_tc:$PYTHONPATH PYTHONUNBUFFERED=1 TVM_CUDA_COMPILE_MODE=nvcc
echo "== setup $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv,noheader
python3 bench/gpu_tensorcore.py run "$1" --out "$OUT" --stem "$2" --parallel $(( $(nproc) - 1 )) --deadline "${3:-1000000}" 2>&1 \
  | grep -v Warning | tee "$OUT/$2.log" | grep -v '^{' | tail -40
echo "cases: $(grep -c '^{' "$OUT/$2.log"); done in $(( $(date +%s) - t0 )) s"
