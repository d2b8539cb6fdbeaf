#!/usr/bin/env bash
# bench/amx_device.sh PLAN TAG TIMEOUT [bench/amx.py run options]
# On the AMX machine (the GPU host's CPU), after `bash .gpu/setup_on_device.sh .gpu && source /tmp/tvm_site/env.sh`:
# installs heron + the cpu_dlboost plugin (and pydantic & co. from .gpu/amx/amx_site.tar.xz, which that machine lacks)
# under /tmp, then runs `bench/amx.py run PLAN` with results and a log under $OUT (or ./amx_out).
set -u
OUT=${OUT:-amx_out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/amx_device_log_$2.txt") 2>&1
t0=$(date +%s)
if [ ! -d /tmp/site/pydantic ]; then mkdir -p /tmp/site && tar -C /tmp/site -xJf .gpu/amx/amx_site.tar.xz; fi
export PYTHONPATH=/tmp/site:$PYTHONPATH
rm -rf /tmp/heron && python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/heron . plugins/cpu_dlboost >/dev/null 2>&1 || exit 4
export PYTHONPATH=/tmp/heron:$PYTHONPATH PYTHONUNBUFFERED=1
echo "== setup $(( $(date +%s) - t0 )) s; $(grep -m1 'model name' /proc/cpuinfo); $(nproc) cpus; load $(cat /proc/loadavg)"
timeout "$3" python3 bench/amx.py run "$1" --out "$OUT" --parallel 15 --tag "_$2" "${@:4}"
echo "== $2 done $(( $(date +%s) - t0 )) s, rc $?"
