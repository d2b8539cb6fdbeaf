"""Operator-library benchmark for the dlboost target (figure 8 of the paper plus large GEMMs):
per case, Heron tuned with a fixed trial budget and its 3 fastest points re-timed (the best re-timed
wins), the best vendor int8 path as it is and restricted to VNNI (bench/vendor.py), the two timed in
alternation (``--rounds``, medians), optionally TVM MetaSchedule with the same number of trials, and
the VNNI peak measured in the same run as the ceiling.

    python bench/cpu_dlboost/operators.py --cores 2 --trials 64 --cases gemm:G1 conv2d:C2D1 bmm:B1 [--metaschedule]

Writes bench/results/cpu_dlboost/operators_<cpu>_<cores>c.{json,md,png} (or under --out).
"""

from __future__ import annotations

import argparse
import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, BENCH)  # bench/'s shared helpers (common, vendor, metaschedule), after this script's folder

FIGURE8 = (
    "gemm:G1 gemm:G3 gemm:G4 gemm:G5 bmm:B1 bmm:B2 bmm:B3 bmm:B4 gemv:GV2 gemv:GV3 gemv:GV5 conv1d:C1D1 conv1d:C1D3 "
    "conv2d:C2D1 conv2d:C2D2 conv2d:C2D3 conv2d:C2D4 conv2d:C2D5 conv2d:C2D6 conv3d:C3D1 conv3d:C3D3 conv3d:C3D5 "
    "dil:D1 dil:D3 dil:D5 t2d:T1 t2d:T3 t2d:T5 scan:S1 scan:S3 scan:S5 gemm:M=512,K=512,N=512 gemm:G2"
).split()


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="threads a kernel may use")
    ap.add_argument("--trials", type=int, default=64, help="measured trials per case (Heron and MetaSchedule)")
    ap.add_argument("--cases", nargs="+", default=FIGURE8, help="OP:PRESET or OP:K=V,...")
    ap.add_argument("--search", default="crand")
    ap.add_argument("--model", default="none")
    ap.add_argument("--parallel", type=int, default=len(os.sched_getaffinity(0)), help="build workers")
    ap.add_argument("--metaschedule", action="store_true", help="also tune each case with MetaSchedule (slow)")
    ap.add_argument(
        "--metaschedule-only",
        action="store_true",
        help="add MetaSchedule to the cases of an existing results file (same cores and trials), Heron not re-run",
    )
    ap.add_argument(
        "--channels-last",
        action="store_true",
        help="convolutions on channels-last activations and output (the layout PyTorch's int8 convolutions take)",
    )
    ap.add_argument("--no-vendor", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="alternating Heron / vendor timings per case (medians reported)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "cpu_dlboost"))
    ap.add_argument("--db", default=None, help="records database (default: a fresh one); an existing one resumes")
    ap.add_argument("--merge", action="store_true", help="keep the other cases already in the results file")
    ap.add_argument(
        "--merge-rows",
        metavar="FILE",
        help="replace the results file's cases by those of FILE (a later run, same machine, cores and trials), "
        "keeping the MetaSchedule results FILE lacks; nothing is measured",
    )
    return ap.parse_args()


ARGS = parse()
for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.cores)

import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402

from common import machine, retime, retime_best  # noqa: E402
from peak import measure_peak  # noqa: E402
from vendor import check_threads  # noqa: E402

from heron_core.cli import parse_shape  # noqa: E402
from heron_core.tuner import tune_single  # noqa: E402


def vendor(op: str, shape, isa: str) -> dict:
    from vendor import measure_vendor

    return measure_vendor(op, shape, ARGS.cores, isa=isa, timeout=600)


def metaschedule(op: str, shape: dict) -> dict:
    cmd = [sys.executable, os.path.join(BENCH, "metaschedule.py"), "--op", op, "--trials", str(ARGS.trials)]
    cmd += ["--shape", ",".join(f"{k}={v}" for k, v in shape.items()), "--cores", str(ARGS.cores)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if proc.returncode == 0 and lines else {"error": proc.stderr[-500:]}


def case_shape(op: str, shape_text: str) -> dict | list | str:
    """The case's shape; with --channels-last, a convolution's shape (preset, named or positional) gets channels_last=1."""
    from heron_core import config
    from heron_core.registry import registry

    shape = parse_shape(shape_text)
    cls = registry().get("operator", op).factory
    if not ARGS.channels_last or "channels_last" not in cls.Shape.model_fields:
        return shape
    return {**config.parse_shape(cls, shape), "channels_last": 1}


def run_case(text: str, db: str, peak: float) -> dict:
    op, _, shape_text = text.partition(":")
    shape = case_shape(op, shape_text)
    cfg = {
        "target": {"name": "dlboost", "num_cores": ARGS.cores},
        "cases": [{"op": op, "shape": shape}],
        "trials": ARGS.trials,
        "search": ARGS.search,
        "model": ARGS.model,
        "runner": {"name": "local", "parallel": ARGS.parallel},
        "db": db,
    }
    outcome, wall = tune_single(cfg)
    task = outcome.task
    ops = task.op.op_count()
    chosen, costs = retime_best(task, db)
    heron_rounds = [statistics.median(costs)]
    isas = () if ARGS.no_vendor else ("native", "vnni") if task.target.cpu.has_amx else ("native",)
    vendor_rounds: dict[str, list[dict]] = {isa: [] for isa in isas}
    # Heron and the vendor alternate, ARGS.rounds times each: a slow spell of the shared host
    # then shows in one round of both sides, and the medians over rounds leave it out.
    for i in range(ARGS.rounds if isas else 1):
        if i:
            heron_rounds.append(statistics.median(retime(task, [chosen.point], chosen.latency_s)[0]))
        for isa in isas:
            vendor_rounds[isa].append(vendor(op, task.op.shape.as_ints(), isa))
    lat = statistics.median(heron_rounds)
    row = {
        "case": text,
        "workload": task.workload_key,
        "trials": outcome.total,
        "failures": dict(outcome.failures),
        "tuning_s": round(wall, 1),
        "heron_ms": lat * 1e3,
        "heron_gops": ops / lat / 1e9,
        "pct_of_peak": 100 * ops / lat / 1e9 / peak,
        "heron_ms_tuning": chosen.latency_s * 1e3,
        "heron_ms_rounds": [x * 1e3 for x in heron_rounds],
        "best_point": chosen.point,
    }
    for isa, rounds in vendor_rounds.items():
        bests = [v["best"] for v in rounds if v.get("best")]
        if not bests:
            row[f"vendor_{isa}"] = {"error": rounds[0].get("error", "no path")}
            continue
        ms = statistics.median(b["ms"] for b in bests)
        paths = [b["path"] for b in bests]
        row[f"vendor_{isa}"] = {"path": max(set(paths), key=paths.count), "ms": ms, "ms_rounds": [b["ms"] for b in bests]}
        row[f"speedup_vs_vendor_{isa}"] = ms / row["heron_ms"]
    if not ARGS.no_vendor and not task.target.cpu.has_amx:
        # Without AMX the libraries' own choice is already VNNI: one run stands for both columns.
        row["vendor_vnni"] = row["vendor_native"]
        if "speedup_vs_vendor_native" in row:
            row["speedup_vs_vendor_vnni"] = row["speedup_vs_vendor_native"]
    if ARGS.metaschedule:
        add_metaschedule(row, op, task.op.shape.as_ints())
    return row


def add_metaschedule(row: dict, op: str, shape: dict) -> None:
    ms = metaschedule(op, shape)
    row["metaschedule"] = ms
    if ms.get("ok") and ms.get("correct"):
        row["speedup_vs_metaschedule"] = ms["latency_s"] * 1e3 / row["heron_ms"]


def geomean(values: list[float]) -> float | None:
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


def write(rows: list[dict], peak: dict, info: dict) -> None:
    stem = os.path.join(ARGS.out, f"operators_{info['llvm_cpu']}_{ARGS.cores}c")
    keys = ("speedup_vs_vendor_vnni", "speedup_vs_vendor_native", "speedup_vs_metaschedule")
    summary = {k: geomean([r[k] for r in rows if k in r]) for k in keys}
    doc = {
        "machine": info,
        "peak_gops": peak,
        "trials_per_case": ARGS.trials,
        "search": ARGS.search,
        "model": ARGS.model,
        "geomean": summary,
        "cases": rows,
    }
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=2)
    head = "| case | Heron ms | GOPS | % peak | vendor (VNNI) | x | vendor (as is) | x | MetaSchedule x |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    lines = []
    for r in rows:
        vv, vn = r.get("vendor_vnni", {}), r.get("vendor_native", {})
        label = r["case"] + (" (channels-last)" if "channels_last=1" in r["workload"] else "")
        lines.append(
            f"| {label} | {r['heron_ms']:.4f} | {r['heron_gops']:.0f} | {r['pct_of_peak']:.1f} | "
            f"{vv.get('path', '-')} {vv.get('ms', float('nan')):.4f} | {r.get('speedup_vs_vendor_vnni', float('nan')):.2f} | "
            f"{vn.get('path', '-')} {vn.get('ms', float('nan')):.4f} | {r.get('speedup_vs_vendor_native', float('nan')):.2f} | "
            f"{r.get('speedup_vs_metaschedule', float('nan')):.2f} |"
        )
    gm = " ".join(f"{k}: {v:.2f}" for k, v in summary.items() if v)
    with open(stem + ".md", "w") as f:
        f.write(
            f"# dlboost operators on {info['cpu']} ({ARGS.cores} threads)\n\n{json.dumps(info)}\n\n"
            f"VNNI peak {peak[str(ARGS.cores)]:.0f} GOPS; {ARGS.trials} trials per case ({ARGS.search}, {ARGS.model}).\n"
            f"Geometric means: {gm}\n\n" + head + "\n".join(lines) + "\n"
        )
    chart(rows, stem + ".png")


def chart(rows: list[dict], path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 0.5 * len(rows)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(rows))
    bars = [("speedup_vs_vendor_vnni", "vs vendor (VNNI only)"), ("speedup_vs_vendor_native", "vs vendor (as is)")]
    if all(r.get("vendor_vnni") == r.get("vendor_native") for r in rows):  # no AMX: the same run
        bars = [("speedup_vs_vendor_native", "vs vendor (its own choice: VNNI on this CPU)")]
    if any("speedup_vs_metaschedule" in r for r in rows):
        bars.append(("speedup_vs_metaschedule", "vs TVM MetaSchedule (same trials)"))
    width = 0.8 / len(bars)
    for i, (key, label) in enumerate(bars):
        offset = (i - (len(bars) - 1) / 2) * width
        ax.bar([x + offset for x in xs], [r.get(key, 0) for r in rows], width=width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    if bars[-1][0] == "speedup_vs_metaschedule":  # 1-50x next to ~1x
        ax.set_yscale("log")
    ax.set_xticks(list(xs), [r["case"].split(":")[1][:12] for r in rows], rotation=60, fontsize=7)
    ax.set_ylabel("Heron speedup (x)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def workload(row: dict) -> tuple[str, dict[str, int]]:
    """A row's operator and shape, from its workload key (op[K=V,...]:dtypes)."""
    op, params = row["workload"].split("]")[0].split("[")
    return op, {k: int(v) for k, v in (kv.split("=") for kv in params.split(","))}


def results_doc(stem: str) -> dict:
    """An existing results file; its trial budget and search settings become this run's."""
    with open(stem + ".json") as f:
        doc = json.load(f)
    ARGS.trials, ARGS.search, ARGS.model = doc["trials_per_case"], doc["search"], doc["model"]
    return doc


def merge_rows(stem: str, path: str) -> None:
    """The rows of a later run replace the results file's; MetaSchedule's figures stay (same trials)."""
    from heron_core.registry import registry

    doc = results_doc(stem)
    with open(path) as f:
        later = json.load(f)
    if later["trials_per_case"] != doc["trials_per_case"] or later["machine"]["llvm_cpu"] != doc["machine"]["llvm_cpu"]:
        sys.exit(f"{path} is not a run of the same machine and trial budget")
    rows = {r["case"]: r for r in doc["cases"]}
    if set(rows) <= {r["case"] for r in later["cases"]}:  # a complete re-run: its machine and peak head the file
        doc["machine"], doc["peak_gops"] = later["machine"], later["peak_gops"]
    peak = doc["peak_gops"][str(ARGS.cores)]
    for row in later["cases"]:
        earlier = rows.get(row["case"], {})
        if "metaschedule" not in row and "metaschedule" in earlier and earlier["workload"] == row["workload"]:
            row["metaschedule"] = earlier["metaschedule"]
        rows[row["case"]] = row
    for row in rows.values():  # GOPS from the current op counts (e.g. without padding taps)
        op, shape = workload(row)
        cls = registry().get("operator", op).factory
        ops = cls(cls.Shape.model_validate(shape), "int8", "int32").op_count()
        row["heron_gops"] = ops / row["heron_ms"] / 1e6
        row["pct_of_peak"] = 100 * row["heron_gops"] / peak
        ms = row.get("metaschedule", {})
        if ms.get("ok") and ms.get("correct"):
            row["speedup_vs_metaschedule"] = ms["latency_s"] * 1e3 / row["heron_ms"]
    write(list(rows.values()), doc["peak_gops"], doc["machine"])


def metaschedule_only(stem: str) -> None:
    """MetaSchedule for ARGS.cases of an existing results file, written back after each case."""
    doc = results_doc(stem)
    rows = doc["cases"]
    for case in ARGS.cases:
        row = next(r for r in rows if r["case"] == case)
        add_metaschedule(row, *workload(row))
        write(rows, doc["peak_gops"], doc["machine"])
        print(json.dumps(row), flush=True)


def main() -> None:
    os.makedirs(ARGS.out, exist_ok=True)
    stem = os.path.join(ARGS.out, f"operators_{machine()['llvm_cpu']}_{ARGS.cores}c")
    if ARGS.metaschedule_only:
        return metaschedule_only(stem)
    if ARGS.merge_rows:
        return merge_rows(stem, ARGS.merge_rows)
    if not ARGS.no_vendor:
        try:
            check_threads(ARGS.cores)  # before tuning, not after it
        except ValueError as exc:
            sys.exit(str(exc))
    db = ARGS.db or os.path.join(tempfile.mkdtemp(prefix="heron-bench-"), "records.db")
    peak = {"1": measure_peak(1), str(ARGS.cores): measure_peak(ARGS.cores)}
    info = machine()
    print(f"VNNI peak: {peak['1']:.0f} GOPS on 1 core, {peak[str(ARGS.cores)]:.0f} on {ARGS.cores}", flush=True)
    rows = []
    stem = os.path.join(ARGS.out, f"operators_{info['llvm_cpu']}_{ARGS.cores}c")
    if ARGS.merge and os.path.exists(stem + ".json"):
        with open(stem + ".json") as f:
            rows = [r for r in json.load(f)["cases"] if r["case"] not in ARGS.cases]
    for text in ARGS.cases:
        rows.append(run_case(text, db, peak[str(ARGS.cores)]))
        print(json.dumps(rows[-1]), flush=True)
        write(rows, peak, info)


if __name__ == "__main__":
    main()
