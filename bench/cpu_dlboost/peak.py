"""VNNI peak microbenchmark (the kernel: heron_cpu_dlboost/peak.py): register-only vpdpbusd zmm chains, built with TVM.

Each thread runs ``chains`` independent accumulator chains (enough to cover vpdpbusd's
latency on two ports), so the loop is bound by vpdpbusd throughput alone. Reports int8
GOPS (one vpdpbusd zmm = 16 lanes x 4 multiply-adds = 128 ops).
"""

from __future__ import annotations

import argparse
import json
import os

from heron_cpu_dlboost.peak import measure_peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    res = {"1": measure_peak(1), str(args.threads): measure_peak(args.threads)}
    print(json.dumps({"vnni_peak_gops": res}))


if __name__ == "__main__":
    main()
