"""Search-efficiency benchmark: every searcher with the same trial budget on the same
workloads, several seeds; best-so-far latency vs trials (PNG), a table (median over seeds,
trials to reach 95% of the best any run found), the search overhead, and optionally TVM
MetaSchedule with the same number of trials (bench/metaschedule.py).

    python bench/search/search.py --trials 200 --seeds 0 1 2 --metaschedule \\
        --workloads gemm:M=512,K=512,N=512 gemm:M=1024,K=1024,N=1024 gemm:M=32,K=2048,N=1008 gemm:M=256,K=1024,N=256

Writes bench/results/search/search_<cpu>.{json,md,png} (or under --out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/: metaschedule.py


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workloads", nargs="+", default=["gemm:M=256,K=256,N=256", "gemm:M=512,K=512,N=512",
                                                       "gemm:M=32,K=1024,N=512", "gemm:M=1024,K=256,N=128"])
    ap.add_argument("--searchers", nargs="*", default=["cga", "ga", "sa", "crand", "random"])
    ap.add_argument("--model", default="gbdt")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--microkernel", default="vnni", help="'generic' to try the benchmark on a CPU without VNNI")
    ap.add_argument("--metaschedule", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="keep the runs already in the results file (other workloads, searchers, seeds or MetaSchedule) "
                    "and add these")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "search"))
    return ap.parse_args()


def tune(workload: str, searcher: str, seed: int, a: argparse.Namespace, db: str) -> dict:
    from heron_core.records import RecordDB
    from heron_core.tuner import tune_single

    op, shape = workload.split(":")
    outcome, wall = tune_single({
        "target": {"name": "dlboost", "num_cores": a.cores, "microkernel": a.microkernel},
        "cases": [{"op": op, "shape": {k: int(v) for k, v in (p.split("=") for p in shape.split(","))}}],
        "trials": a.trials, "batch_size": a.batch_size, "search": searcher,
        "model": a.model if searcher != "random" else "none",
        "runner": {"name": "local", "parallel": a.parallel}, "seed": seed, "db": db,
    })
    rdb = RecordDB(db)
    lat = [r.latency_s if r.ok else None for r in rdb.records(outcome.task.workload_key, outcome.task.target_key)]
    rdb.close()
    curve, best = [], float("inf")
    for x in lat:
        best = min(best, x) if x is not None else best
        curve.append(best)
    s = outcome.seconds
    return {"workload": workload, "searcher": searcher, "seed": seed, "curve": curve, "wall_s": wall,
            "search_s": s["search"], "model_s": s["model"], "measure_s": s["measure"],
            "ops": outcome.task.op.op_count(), "failures": dict(outcome.failures)}


def summarize(runs: list[dict], ms: dict) -> list[dict]:
    rows = []
    for w in dict.fromkeys(r["workload"] for r in runs):
        wruns = [r for r in runs if r["workload"] == w]
        best = min(min(r["curve"], default=float("inf")) for r in wruns)
        for s in dict.fromkeys(r["searcher"] for r in wruns):
            sr = [r for r in wruns if r["searcher"] == s]
            finals = [r["curve"][-1] if r["curve"] else float("inf") for r in sr]
            reach = [next((i + 1 for i, x in enumerate(r["curve"]) if x <= best / 0.95), None) for r in sr]
            overhead = [(r["search_s"] + r["model_s"]) / r["wall_s"] for r in sr]
            rows.append({
                "workload": w, "searcher": s, "median_best_ms": statistics.median(finals) * 1e3,
                "median_gops": sr[0]["ops"] / statistics.median(finals) / 1e9,
                "trials_to_95pct": statistics.median([x if x else float("inf") for x in reach]),
                "runs_reaching_95pct": sum(x is not None for x in reach), "runs": len(sr),
                "search_overhead_pct": 100 * statistics.median(overhead),
            })
        if w in ms:
            rows.append({"workload": w, "searcher": "metaschedule", **ms[w]})
    return rows


def plot(runs: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
    for ax, w in zip(axes[0], workloads):
        for s in dict.fromkeys(r["searcher"] for r in runs):
            curves = [r["curve"] for r in runs if r["workload"] == w and r["searcher"] == s and r["curve"]]
            if not curves:
                continue
            n = min(len(c) for c in curves)
            ops = next(r["ops"] for r in runs if r["workload"] == w)
            med = np.median(np.array([c[:n] for c in curves]), axis=0)
            ax.plot(np.arange(1, n + 1), ops / med / 1e9, label=s)
        ax.set_title(w, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel("best GOPS so far (median over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    a = parse()
    os.environ["TVM_NUM_THREADS"] = str(a.cores)
    from heron_core.tvm_compat import versions
    from heron_cpu_dlboost.cpu import host_cpu, llvm_host_cpu

    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="heron-search-")
    runs, ms = [], {}
    stem = os.path.join(a.out, f"search_{llvm_host_cpu()}_{a.cores}c")
    if a.merge and os.path.exists(stem + ".json"):
        with open(stem + ".json") as f:
            old = json.load(f)
        mine = {(w, s, seed) for w in a.workloads for s in a.searchers for seed in a.seeds}
        runs = [r for r in old["runs"] if (r["workload"], r["searcher"], r["seed"]) not in mine]
        ms = {w: m for w, m in old.get("metaschedule", {}).items() if not (a.metaschedule and w in a.workloads)}
    for w in a.workloads:
        for s in a.searchers:
            for seed in a.seeds:
                runs.append(tune(w, s, seed, a, os.path.join(work, f"{len(runs)}.db")))
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "curve"}), flush=True)
        if a.metaschedule:
            op, shape = w.split(":")
            cmd = [sys.executable, os.path.join(BENCH, "metaschedule.py"), "--op", op, "--shape", shape,
                   "--trials", str(a.trials), "--cores", str(a.cores)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
            ms[w] = json.loads(lines[-1]) if lines else {"ok": False, "error": proc.stderr[-500:]}
            if ms[w].get("ok"):
                ms[w]["median_best_ms"] = ms[w]["latency_s"] * 1e3
        cpu = host_cpu()
        result = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu.model, "llvm_cpu": llvm_host_cpu(), "cores": a.cores,
                  "microkernel": a.microkernel, "trials": a.trials, "batch_size": a.batch_size, "model": a.model,
                  "seeds": sorted({r["seed"] for r in runs}), "versions": versions(), "summary": summarize(runs, ms),
                  "metaschedule": ms, "runs": runs}
        with open(stem + ".json", "w") as f:  # after every workload: a killed run keeps what it did
            json.dump(result, f, indent=1)
    if runs:  # a MetaSchedule-only run has no curves to plot
        plot(runs, stem + ".png")
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    lines = [f"# Search efficiency — {r['date']}", "",
             f"CPU {r['cpu']} (LLVM `{r['llvm_cpu']}`), {r['cores']} cores, micro-kernel `{r['microkernel']}`; "
             f"{r['trials']} trials per run, batch {r['batch_size']}, model `{r['model']}`, seeds {r['seeds']}.", "",
             "| workload | searcher | median best ms | GOPS | trials to 95% of best (median) | runs reaching it "
             "| search overhead |",
             "|---|---|---|---|---|---|---|"]
    for x in r["summary"]:
        if x["searcher"] == "metaschedule":
            best = f"{x['median_best_ms']:.4f}" if x.get("ok") else "failed"
            lines.append(f"| {x['workload']} | metaschedule | {best} | | | | |")
        else:
            lines.append(f"| {x['workload']} | {x['searcher']} | {x['median_best_ms']:.4f} | {x['median_gops']:.0f} | "
                         f"{x['trials_to_95pct']} | {x['runs_reaching_95pct']}/{x['runs']} | {x['search_overhead_pct']:.0f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
