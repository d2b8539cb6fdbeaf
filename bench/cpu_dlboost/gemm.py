"""GEMM benchmark for the dlboost target: tune u8 x s8 -> s32 GEMMs with a fixed trial
budget and report the best kernel's GOPS as a fraction of the VNNI peak measured in the
same run, next to numpy's fp32 matmul on the same number of threads.

    python bench/cpu_dlboost/gemm.py --cores 2 --trials 200 --shapes 512 1024

Writes bench/results/cpu_dlboost/gemm_<cpu>_<cores>c.{json,md} (or under --out).
"""

from __future__ import annotations

import argparse
import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, BENCH)  # bench/'s shared helpers (common, vendor, metaschedule), after this script's folder


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="threads a kernel may use")
    ap.add_argument("--trials", type=int, default=96)
    ap.add_argument("--shapes", type=int, nargs="+", default=[512, 1024], help="cube sizes M=K=N")
    ap.add_argument("--search", default="crand")
    ap.add_argument("--model", default="none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)), help="build workers")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "cpu_dlboost"))
    ap.add_argument("--db", default=None, help="records database (default: a fresh one under --out)")
    return ap.parse_args()


ARGS = parse()
# Thread counts must be fixed before numpy/TVM start their pools.
for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.cores)

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402

import numpy as np  # noqa: E402
from common import retime_best  # noqa: E402
from peak import measure_peak  # noqa: E402

from heron_core.tuner import tune_single  # noqa: E402
from heron_core.tvm_compat import versions  # noqa: E402
from heron_cpu_dlboost.cpu import host_cpu, llvm_host_cpu  # noqa: E402


def numpy_fp32_seconds(n: int) -> float:
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((n, n), dtype=np.float32)
    number = max(1, int(0.2 / max(timeit.timeit(lambda: a @ b, number=1), 1e-6)))
    return statistics.median(t / number for t in timeit.repeat(lambda: a @ b, number=number, repeat=7))


def main() -> None:
    os.makedirs(ARGS.out, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="heron-bench-")
    db_path = ARGS.db or os.path.join(workdir, "records.db")
    peak = {"1": measure_peak(1), str(ARGS.cores): measure_peak(ARGS.cores)}
    peak_all = peak[str(ARGS.cores)]
    print(f"VNNI peak: {peak['1']:.0f} GOPS on 1 core, {peak_all:.0f} GOPS on {ARGS.cores}", flush=True)
    rows = []
    for n in ARGS.shapes:
        outcome, wall = tune_single(
            {
                "target": {"name": "dlboost", "num_cores": ARGS.cores},
                "cases": [{"op": "gemm", "shape": {"M": n, "K": n, "N": n}}],
                "trials": ARGS.trials,
                "batch_size": ARGS.batch_size,
                "search": ARGS.search,
                "model": ARGS.model,
                "runner": {"name": "local", "parallel": ARGS.parallel},
                "seed": ARGS.seed,
                "db": db_path,
            }
        )
        best, costs = retime_best(outcome.task, db_path)
        lat = statistics.median(costs)
        ops = outcome.task.op.op_count()
        np_s = numpy_fp32_seconds(n)
        row = {
            "shape": f"{n}x{n}x{n}",
            "trials": outcome.total,
            "failures": dict(outcome.failures),
            "tuning_s": round(wall, 1),
            "latency_ms_tuning": best.latency_s * 1e3,
            "latency_ms": lat * 1e3,
            "gops": ops / lat / 1e9,
            "pct_of_peak": 100 * ops / lat / 1e9 / peak_all,
            "numpy_fp32_ms": np_s * 1e3,
            "speedup_vs_numpy_fp32": np_s / lat,
            "best_point": best.point,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(rows, peak)


def write(rows: list[dict], peak: dict) -> None:
    cpu = host_cpu()
    result = {
        "benchmark": "dlboost gemm u8 x s8 -> s32",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {
            "cpu": cpu.model,
            "llvm_cpu": llvm_host_cpu(),
            "vnni": cpu.has_vnni,
            "amx": cpu.has_amx,
            "cores_used": ARGS.cores,
            "cores_visible": cpu.cores,
            "python": platform.python_version(),
        },
        "versions": versions(),
        "search": ARGS.search,
        "model": ARGS.model,
        "seed": ARGS.seed,
        "vnni_peak_gops": peak,
        "results": rows,
    }
    stem = os.path.join(ARGS.out, f"gemm_{llvm_host_cpu()}_{ARGS.cores}c")
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result), flush=True)


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"# {r['benchmark']} — {r['date']}",
        "",
        f"CPU: {m['cpu']} (LLVM `{m['llvm_cpu']}`), VNNI {m['vnni']}, AMX {m['amx']}; "
        f"{m['cores_used']} of {m['cores_visible']} cores used. Search `{r['search']}`, model `{r['model']}`, seed {r['seed']}.",
        f"Versions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}.",
        f"VNNI peak (vpdpbusd zmm, measured in this run): {r['vnni_peak_gops']['1']:.0f} GOPS on 1 core, "
        f"{r['vnni_peak_gops'][str(m['cores_used'])]:.0f} GOPS on {m['cores_used']}.",
        "",
        "| shape | trials | tuning s | latency ms | GOPS | % of VNNI peak | numpy fp32 ms | speedup vs numpy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        lines.append(
            f"| {x['shape']} | {x['trials']} | {x['tuning_s']} | {x['latency_ms']:.4f} | {x['gops']:.0f} | "
            f"{x['pct_of_peak']:.1f}% | {x['numpy_fp32_ms']:.4f} | {x['speedup_vs_numpy_fp32']:.1f}x |"
        )
    lines.append("")
    lines.append(
        "Latency: median of 15 repeats (10 calls, or at least 0.1 s, each) of the best tuned kernel, "
        "re-built and re-checked after tuning."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
