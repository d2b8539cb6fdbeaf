#!/usr/bin/env bash
# bench/amx_device.sh PLAN TAG TIMEOUT [bench/amx.py run options]
# bench/amx_device.sh peak TAG TIMEOUT [bench/amx_peak.py options]     (output: $OUT/amx_peak_TAG.jsonl)
# On the AMX machine (the GPU host's CPU), after `bash bench/amx_setup_device.sh && source /tmp/tvm_site_amx/env.sh`
# (or .gpu/setup_on_device.sh, /tmp/tvm_site: the whole bundle, which no longer fits the 64 MiB carry limit with amx_site):
# installs heron + the cpu_dlboost plugin (and pydantic & co. from .gpu/amx/amx_site.tar.xz, which that machine lacks)
# under /tmp (once per machine and tree: KEEP=1 reuses an install of this call), then runs `bench/amx.py run PLAN`
# (or bench/amx_peak.py) with results and a log under $OUT (or ./amx_out).
set -u
OUT=${OUT:-amx_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/amx_device_log_$2.txt") 2>&1
t0=$(date +%s)
if [ ! -d /tmp/site/pydantic ]; then mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/amx/amx_site.tar.xz; fi
export PYTHONPATH=/tmp/site:$PYTHONPATH
if [ "${KEEP:-0}" != 1 ] || [ ! -d /tmp/heron/heron_core ]; then
  rm -rf /tmp/heron && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/heron . plugins/cpu_dlboost >/dev/null 2>&1 || exit 4
fi
export PYTHONPATH=/tmp/heron:$PYTHONPATH PYTHONUNBUFFERED=1
echo "== setup $(( $(date +%s) - t0 )) s; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus; load $(cat /proc/loadavg)"
if [ "$1" = peak ]; then
  timeout "$3" python3 bench/amx_peak.py "${@:4}" | tee "$OUT/amx_peak_$2.jsonl"
else
  timeout "$3" python3 bench/amx.py run "$1" --out "$OUT" --parallel 15 --tag "_$2" "${@:4}"
fi
echo "== $2 done $(( $(date +%s) - t0 )) s, rc $?"
