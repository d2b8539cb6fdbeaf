#!/usr/bin/env bash
# On the GPU machine, from the repository root (the TVM bundle in .gpu, ../shared/gpu/README.md):
#   bash bench/gpu_tensorcore_device.sh install             # call 1: carries .wheels and .gpu/tc (plans)
#   bash bench/gpu_tensorcore_device.sh PLAN STEM [TUNING_DEADLINE_S]   # call 2: carries the TVM bundle
# The bundle and the pure-Python dependencies together exceed one 64 MiB transfer, so a first call
# installs the dependencies (the wheels of .wheels, OR-Tools included, or else SITE, a tar.xz of what
# `pip install --target` made of pydantic & co. for the AMX runs: no OR-Tools) and Heron into /tmp and
# copies the plans there; a second call, while the machine is still warm, carries the bundle and runs:
#   SMOKE=1  the plugin's GPU tests first (every sampled point, wmma and mma, checked against numpy; needs OR-Tools)
#   PLAN     bench/gpu_tensorcore.py run (PLAN relative to .gpu/tc is looked up in /tmp/tc_plans too; "-" = none)
#   TUNE=1   `heron tune --target tensorcore` end to end: tune, re-run (resumes: nothing new), more trials, `heron best`
#            (TUNE=quick: the first two and `heron best`); SMOKE_K picks the GPU tests (pytest -k)
# Results (JSON, markdown, chart, logs, the records database) go to $OUT.
set -u
t0=$(date +%s)
install() {
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
if [ "${1:-}" = install ]; then install; exit 0; fi

bash .gpu/setup_on_device.sh .gpu > "$OUT/setup.log" 2>&1 || { cat "$OUT/setup.log"; exit 2; }
source /tmp/tvm_site/env.sh
[ -d /tmp/heron_tc ] || install
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
  python3 bench/gpu_tensorcore.py run "$plan" --out "$OUT" --stem "$2" --parallel $(( $(nproc) - 1 )) --deadline "${3:-1000000}" \
    2>&1 | grep -v Warning | tee "$OUT/$2.log" | grep -v '^{' | tail -40
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
