#!/usr/bin/env bash
# MobileNetV2's depthwise layers (3x3, batch 1, channels-last int8) on dlboost, one core, against
# the best vendor int8 path restricted to VNNI (and as it is), alternating rounds, medians, % of the
# VNNI peak measured in the same run: bench/cpu_dlboost/operators.py with these cases.
# Results: bench/results/depthwise/operators_<cpu>_1c.{json,md,png}
set -euo pipefail
cd "$(dirname "$0")/../.."
CASES="${CASES:-dep:DEP1 dep:DEP2 dep:DEP5 dep:DEP7 dep:DEP10}"  # C = 32 96 192 384 960 (all ten: DEP1..DEP10)
exec flock /tmp/heron-bench.lock taskset -c 1 python bench/cpu_dlboost/operators.py --cores 1 --parallel 1 --channels-last \
  --trials "${TRIALS:-16}" --rounds 3 --out bench/results/depthwise --cases $CASES
