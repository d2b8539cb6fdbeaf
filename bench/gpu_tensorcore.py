"""Heron `tensorcore` vs PyTorch fp16 (cuBLAS / cuDNN) on the GPU it runs on, in the same run.

Cases: the paper's figure-6 Tensor Core cases (fp16 in, fp16 out/accumulate, as the original),
GEMM 1024^3 / 4096^3 / 8192^3 and a few transformer layers. Each case is tuned with `--trials`
measurements (constrained random search, one runner shared by all cases), then PyTorch runs the
same operator on the same GPU (CUDA events, after warm-up; cudnn.benchmark on).

    python bench/gpu_tensorcore.py --groups gemm,bmm,c2d --trials 24 --out $OUT
Writes gpu_tensorcore.json / .md / .png to --out (default $OUT, else bench/results).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

from heron_core.config import build_config
from heron_core.config import plan as plan_config
from heron_core.records import RecordDB
from heron_core.registry import registry
from heron_core.tuner import Tuner
from heron_core.tvm_compat import versions

_RESNET = [(56, 64, 64, 3, 1, 1), (56, 64, 64, 1, 1, 0), (28, 128, 128, 3, 1, 1), (28, 128, 256, 1, 2, 0),
           (14, 256, 256, 3, 1, 1), (14, 256, 512, 1, 2, 0)]  # H=W, C, K, R=S, stride, pad  # fmt: skip


def _conv2d(n, h, c, k, r, stride, pad, dilation=1):
    return {"N": n, "C": c, "H": h, "W": h, "K": k, "R": r, "S": r, "stride": stride, "pad": pad, "dilation": dilation}


# name -> (group, op, shape): figure 6 of the paper (tests/figure6/configs of the original), then extras
CASES: dict[str, tuple[str, str, dict]] = {
    "G1": ("gemm", "gemm", {"M": 1024, "K": 1024, "N": 1024}),
    "G2": ("gemm", "gemm", {"M": 4096, "K": 4096, "N": 4096}),
    "G3": ("gemm", "gemm", {"M": 32, "K": 2048, "N": 1000}),
    "G4": ("gemm", "gemm", {"M": 32, "K": 4096, "N": 4096}),
    "G5": ("gemm", "gemm", {"M": 32, "K": 4096, "N": 1000}),
    **{f"B{i + 1}": ("bmm", "bmm", {"batch": b, "M": m, "K": k, "N": n})
       for i, (b, m, k, n) in enumerate([(12, 512, 64, 512), (12, 512, 512, 64), (16, 512, 64, 512), (16, 512, 512, 64),
                                         (96, 2048, 128, 2048), (96, 2048, 2048, 128)])},
    **{f"C{i + 1}": ("c2d", "conv2d", _conv2d(16, *s)) for i, s in enumerate(_RESNET)},
    **{f"C1D{i + 1}": ("c1d", "conv1d", {"N": 16, "C": c, "W": 892, "K": k, "S": s, "stride": 1, "pad": p, "dilation": 1})
       for i, (c, k, s, p) in enumerate([(512, 512, 3, 4), (512, 512, 3, 8), (512, 512, 3, 16), (512, 512, 3, 32),
                                         (512, 1024, 1, 0), (1024, 512, 1, 0)])},
    **{f"C3D{i + 1}": ("c3d", "conv3d", {"N": 8, "C": c, "D": d, "H": h, "W": h, "K": k, "T": r, "R": r, "S": r,
                                         "stride": st, "pad": p, "dilation": 1})
       for i, (d, h, c, k, r, st, p) in enumerate([(8, 56, 64, 64, 3, 1, 1), (8, 56, 64, 128, 1, 2, 0),
                                                   (4, 28, 128, 128, 3, 1, 1),
                                                   (4, 28, 128, 256, 1, 2, 0), (2, 14, 256, 256, 3, 1, 1),
                                                   (2, 14, 256, 512, 1, 2, 0)])},
    **{f"D{i + 1}": ("dil", "dil", _conv2d(16, *s, dilation=2)) for i, s in enumerate(_RESNET)},
    **{f"T{i + 1}": ("t2d", "t2d", {"N": 16, "C": c, "H": h, "W": h, "K": k, "R": r, "S": r, "stride": st, "pad": p,
                                    "output_pad": 0})
       for i, (h, c, k, r, st, p) in enumerate([(56, 64, 64, 3, 1, 1), (56, 64, 128, 1, 2, 0), (28, 128, 128, 3, 1, 1),
                                                (28, 128, 256, 1, 2, 0)])},
    **{f"GV{i + 1}": ("gemv", "gemv", {"M": m, "K": k})
       for i, (m, k) in enumerate([(512, 16), (1024, 256), (256, 1024), (512, 256), (1024, 1024)])},
    **{f"S{i + 1}": ("scan", "scan", {"M": m, "N": n, "K": k})
       for i, (m, n, k) in enumerate([(16, 512, 128), (1024, 16, 256), (256, 1024, 256), (512, 256, 16), (1024, 1024, 1024)])},
    "GEMM1024": ("big", "gemm", {"M": 1024, "K": 1024, "N": 1024}),
    "GEMM4096": ("big", "gemm", {"M": 4096, "K": 4096, "N": 4096}),
    "GEMM8192": ("big", "gemm", {"M": 8192, "K": 8192, "N": 8192}),
    "BERT_QKV": ("transformer", "gemm", {"M": 4096, "K": 768, "N": 2304}),
    "BERT_FFN1": ("transformer", "gemm", {"M": 4096, "K": 768, "N": 3072}),
    "BERT_FFN2": ("transformer", "gemm", {"M": 4096, "K": 3072, "N": 768}),
    "LLAMA_MLP": ("transformer", "gemm", {"M": 2048, "K": 4096, "N": 11008}),
    "ATTN_QK": ("transformer", "bmm", {"batch": 96, "M": 512, "K": 64, "N": 512}),
}  # fmt: skip
FIGURE6_GROUPS = ("gemm", "bmm", "c2d", "c1d", "c3d", "dil", "t2d", "gemv", "scan")


def torch_ms(op: str, shape: dict) -> float:
    """Milliseconds per call of the same operator in PyTorch fp16 on the GPU (cuBLAS / cuDNN)."""
    import torch
    import torch.nn.functional as F

    torch.backends.cudnn.benchmark = True
    s, dev, h = shape, "cuda", torch.float16

    def rnd(*dims):
        return torch.randn(*dims, device=dev, dtype=h)

    if op == "gemm":
        a, b = rnd(s["M"], s["K"]), rnd(s["K"], s["N"])
        fn = lambda: torch.matmul(a, b)  # noqa: E731
    elif op == "bmm":
        a, b = rnd(s["batch"], s["M"], s["K"]), rnd(s["batch"], s["K"], s["N"])
        fn = lambda: torch.bmm(a, b)  # noqa: E731
    elif op == "gemv":
        w, x = rnd(s["M"], s["K"]), rnd(s["K"])
        fn = lambda: torch.mv(w, x)  # noqa: E731
    elif op == "scan":
        a = rnd(s["M"], s["K"])
        fn = lambda: torch.cumsum(a, dim=1)  # noqa: E731
    elif op == "t2d":
        x, w = rnd(s["N"], s["C"], s["H"], s["W"]), rnd(s["C"], s["K"], s["R"], s["S"])
        fn = lambda: F.conv_transpose2d(x, w, stride=s["stride"], padding=s["pad"], output_padding=s["output_pad"])  # noqa: E731
    else:
        spatial = {"conv1d": ("W",), "conv3d": ("D", "H", "W")}.get(op, ("H", "W"))
        kernel = {"conv1d": ("S",), "conv3d": ("T", "R", "S")}.get(op, ("R", "S"))
        x = rnd(s["N"], s["C"], *(s[d] for d in spatial))
        w = rnd(s["K"], s["C"], *(s[d] for d in kernel))
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[len(spatial)]
        fn = lambda: conv(x, w, stride=s["stride"], padding=s["pad"], dilation=s.get("dilation", 1))  # noqa: E731
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    n = max(20, min(2000, int(100 / max(start.elapsed_time(end), 1e-3))))  # ~100 ms of calls
    best = math.inf
    for _ in range(3):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(end) / n)
    return best


def machine() -> dict:
    import torch

    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "gpu": torch.cuda.get_device_name(0),
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "nvcc": subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1],
        "cpu_cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": versions(),
    }


def run(names: list[str], trials: int, db_path: str, on_row=lambda rows: None, big_trials: int = 0) -> list[dict]:
    """Tune and compare each case; ``on_row(rows)`` after each (results are written as they come).
    Cases of the group 'big' get ``big_trials`` (if larger)."""
    cases = [{"op": CASES[n][1], "shape": CASES[n][2]} for n in names]
    config = {
        "target": {"name": "tensorcore"},
        "in_dtype": "float16",
        "out_dtype": "float16",
        "trials": max(trials, big_trials),
        "batch_size": 16,
        "db": db_path,
        "cases": cases,
        "search": {"name": "crand"},
        "runner": {"name": "local", "number": 10, "repeat": 3, "min_repeat_ms": 20, "run_timeout": 120, "build_timeout": 120},
    }
    plan = plan_config(build_config(config), registry())
    db = RecordDB(plan.config.db)
    tuner = Tuner(plan, registry(), db)
    rows = []
    try:
        for name, spec in zip(names, plan.tasks):
            t0 = time.time()
            tuner.plan.config.trials = max(trials, big_trials) if CASES[name][0] == "big" else trials
            outcome = tuner.tune(spec)
            tuned_s = time.time() - t0
            op, shape = CASES[name][1], CASES[name][2]
            row = {"case": name, "group": CASES[name][0], "op": op, "shape": shape, "trials": outcome.total,
                   "failures": dict(outcome.failures), "tune_s": round(tuned_s, 1)}  # fmt: skip
            flops = outcome.task.op.op_count()
            if outcome.best is not None:
                row.update(heron_ms=outcome.best.latency_s * 1e3, point=outcome.best.point)
                row["heron_tflops"] = flops / outcome.best.latency_s / 1e12
            try:
                row["torch_ms"] = torch_ms(op, shape)
                row["torch_tflops"] = flops / (row["torch_ms"] * 1e-3) / 1e12
            except Exception as exc:  # report, go on
                row["torch_error"] = f"{type(exc).__name__}: {exc}"[:300]
            if "heron_ms" in row and "torch_ms" in row:
                row["speedup_vs_torch"] = row["torch_ms"] / row["heron_ms"]
            rows.append(row)
            on_row(rows)
            print(json.dumps({k: v for k, v in row.items() if k != "point"}), flush=True)
    finally:
        tuner.close()
        db.close()
    return rows


def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(rows: list[dict]) -> dict:
    fig6 = [r["speedup_vs_torch"] for r in rows if r["group"] in FIGURE6_GROUPS and "speedup_vs_torch" in r]
    by_group = {}
    for g in dict.fromkeys(r["group"] for r in rows):
        by_group[g] = geomean([r["speedup_vs_torch"] for r in rows if r["group"] == g and "speedup_vs_torch" in r])
    failed = [r["case"] for r in rows if r["group"] in FIGURE6_GROUPS and "heron_ms" not in r]
    return {"figure6_cases_measured": len(fig6), "figure6_geomean_speedup": geomean(fig6),
            "figure6_cases_without_a_valid_kernel": failed, "geomean_by_group": by_group}  # fmt: skip


def write(rows: list[dict], info: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows)
    (out / f"{stem}.json").write_text(json.dumps({"machine": info, "summary": summary, "cases": rows}, indent=1))
    lines = [
        f"# Heron `tensorcore` vs PyTorch fp16 on {info['gpu']}",
        "",
        f"{info['date']}; driver/GPU: {info['nvidia_smi']}; torch {info['torch']} (CUDA {info['torch_cuda']}, cuDNN "
        f"{info['cudnn']}); {info['nvcc']}; TVM {info['versions'].get('apache-tvm')}.",
        "fp16 inputs; Heron accumulates and stores fp16 (as the original's figure 6); PyTorch's fp16 matmul/conv "
        "accumulate in fp32. speedup = torch ms / Heron ms (>1: Heron faster).",
        "",
        "| case | op | shape | trials | failed | Heron ms | Heron TFLOP/s | torch ms | torch TFLOP/s | speedup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items())
        lines.append(
            f"| {r['case']} | {r['op']} | {shape} | {r['trials']} | {sum(r['failures'].values())} | "
            f"{_f(r.get('heron_ms'), 4)} | {_f(r.get('heron_tflops'), 1)} | {_f(r.get('torch_ms'), 4)} | "
            f"{_f(r.get('torch_tflops'), 1)} | {_f(r.get('speedup_vs_torch'), 2)} |"
        )
    failed = summary["figure6_cases_without_a_valid_kernel"]
    lines += ["", f"Figure-6 cases measured: {summary['figure6_cases_measured']}, geomean speedup "
              f"{_f(summary['figure6_geomean_speedup'], 3)} (over those only; no valid kernel: {', '.join(failed) or 'none'}; "
              f"not run: {', '.join(_not_run(rows))}"
              "); by group: "
              + ", ".join(f"{g} {_f(v, 3)}" for g, v in summary["geomean_by_group"].items())]  # fmt: skip
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    _plot(rows, out / f"{stem}.png", info["gpu"])


def _not_run(rows: list[dict]) -> list[str]:
    done = {r["case"] for r in rows}
    return [n for n, c in CASES.items() if c[0] in FIGURE6_GROUPS and n not in done]


def _f(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _plot(rows: list[dict], path: Path, gpu: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [r for r in rows if "speedup_vs_torch" in r]
    fig = Figure(figsize=(max(6, 0.32 * len(shown)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(range(len(shown)), [r["speedup_vs_torch"] for r in shown], color="tab:blue")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shown)), [r["case"] for r in shown], rotation=90, fontsize=7)
    ax.set_ylabel("speedup vs PyTorch fp16 (log)")
    ax.set_title(f"Heron tensorcore vs PyTorch, {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", default="gemm,bmm,c2d,big,transformer", help="case groups, or 'all'")
    ap.add_argument("--cases", default="", help="case names (overrides --groups)")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--big-trials", type=int, default=64, help="trials of the 'big' GEMMs")
    ap.add_argument("--out", default=os.environ.get("OUT") or "bench/results")
    ap.add_argument("--stem", default="gpu_tensorcore")
    ap.add_argument("--db", default="")
    ap.add_argument("--merge", nargs="*", help="result JSONs of earlier runs: write their cases as one result (no GPU needed)")
    args = ap.parse_args()
    if args.merge:
        runs = [json.loads(Path(f).read_text()) for f in args.merge]
        rows = list({r["case"]: r for run in runs for r in run["cases"]}.values())  # a later run's case wins
        info = {**runs[0]["machine"], "runs": [run["machine"]["date"] for run in runs]}
        write(sorted(rows, key=lambda r: list(CASES).index(r["case"])), info, Path(args.out), args.stem)
        return
    groups = set(args.groups.split(","))
    names = args.cases.split(",") if args.cases else [n for n, c in CASES.items() if "all" in groups or c[0] in groups]
    db = args.db or os.path.join(tempfile.mkdtemp(prefix="heron-bench-"), "records.db")
    info = machine()
    run(names, args.trials, db, lambda rows: write(rows, info, Path(args.out), args.stem), args.big_trials)


if __name__ == "__main__":
    main()
