"""Awkward shapes on the dlboost target (issue 18): extents the VNNI micro-kernel does not divide
(output lanes not a multiple of 16, reductions not a multiple of 4, prime row counts), handled by
padding inside the kernel.

(a) padding cost: each awkward shape next to the nearest divisible ones, % of the VNNI peak
    (logical op counts), tuned with the same budget;
(b) real-network layers with awkward shapes against the best vendor int8 path restricted to
    AVX-512 VNNI (bench/vendor.py --isa vnni: oneDNN via PyTorch, ONNX Runtime), Heron and the
    vendor timed in alternating rounds in one run, medians.

    flock /tmp/heron-bench.lock taskset -c 1 python bench/cpu_dlboost/awkward_shapes.py --cores 1 --trials 32

Writes bench/results/cpu_dlboost/awkward_shapes_<cpu>_<cores>c.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (a) awkward shape first, then its divisible neighbours
PAIRS = [
    ["dense:M=197,K=768,N=2304", "dense:M=192,K=768,N=2304", "dense:M=208,K=768,N=2304"],
    ["gemm:M=100,K=100,N=100", "gemm:M=96,K=96,N=96", "gemm:M=112,K=112,N=112"],
    ["dense:M=1,K=2048,N=1000", "dense:M=1,K=2048,N=992", "dense:M=1,K=2048,N=1008"],
]
# (b) layers of real networks, batch 1
LAYERS = {
    "ResNet-50 stem 7x7/2, C=3": "conv2d:N=1,C=3,H=224,W=224,K=64,R=7,S=7,stride=2,pad=3,channels_last=1",
    "ResNet-50 classifier": "dense:M=1,K=2048,N=1000",
    "MobileNetV2 stem 3x3/2, C=3": "conv2d:N=1,C=3,H=224,W=224,K=32,R=3,S=3,stride=2,pad=1,channels_last=1",
    "MobileNetV2 expand 24->144": "conv2d:N=1,C=24,H=56,W=56,K=144,R=1,S=1,stride=1,pad=0,channels_last=1",
    "MobileNetV2 project 144->24": "conv2d:N=1,C=144,H=56,W=56,K=24,R=1,S=1,stride=1,pad=0,channels_last=1",
    "MobileNetV2 classifier": "dense:M=1,K=1280,N=1000",
    "ViT-B/16 qkv (M=197)": "dense:M=197,K=768,N=2304",
    "ViT-B/16 fc1 (M=197)": "dense:M=197,K=768,N=3072",
    "ViT-B/16 fc2 (M=197)": "dense:M=197,K=3072,N=768",
    "BERT-base fc1, seq 384": "dense:M=384,K=768,N=3072",
    "BERT-base attention scores, seq 384": "bmm:batch=12,M=384,K=64,N=384",
    "Inception-v3 1x7 (17x17, no pad)": "conv2d:N=1,C=128,H=17,W=17,K=128,R=1,S=7,stride=1,pad=0,channels_last=1",
    "Inception-v3 7x1 (17x17, no pad)": "conv2d:N=1,C=128,H=17,W=17,K=192,R=7,S=1,stride=1,pad=0,channels_last=1",
}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cores", type=int, default=1, help="threads a kernel (and the vendor) may use")
    ap.add_argument("--trials", type=int, default=32, help="measured trials per case")
    ap.add_argument("--search", default="cga")
    ap.add_argument("--model", default="gbdt")
    ap.add_argument("--rounds", type=int, default=3, help="alternating Heron / vendor timings per layer (medians)")
    ap.add_argument("--parts", default="ab", help="a: padding-cost pairs, b: network layers")
    ap.add_argument("--only", default="", help="run only the cases whose text contains one of these ('|'-separated)")
    ap.add_argument("--out", default=os.path.join(BENCH, "results", "cpu_dlboost"))
    ap.add_argument("--db", default=None, help="records database (default: a fresh one); an existing one resumes")
    return ap.parse_args()


ARGS = parse()
for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.cores)
sys.path.insert(0, BENCH)

from common import machine, retime, retime_best  # noqa: E402
from peak import measure_peak  # noqa: E402

from heron_core.cli import parse_shape  # noqa: E402
from heron_core.tuner import tune_single  # noqa: E402


def selected(text: str) -> bool:
    return any(part in text for part in ARGS.only.split("|"))


def tune(text: str, db: str) -> tuple[object, object, float]:
    """Tune one case; returns (task, best re-timed record, its median seconds)."""
    op, _, shape = text.partition(":")
    cfg = {
        "target": {"name": "dlboost", "num_cores": ARGS.cores},
        "cases": [{"op": op, "shape": parse_shape(shape)}],
        "trials": ARGS.trials,
        "search": ARGS.search,
        "model": ARGS.model,
        "runner": {"name": "local", "parallel": 1},
        "db": db,
    }
    outcome, _ = tune_single(cfg)
    best, costs = retime_best(outcome.task, db)
    return outcome.task, best, statistics.median(costs)


def padded_extents(task, point) -> dict[str, int]:
    """The extents the point's kernel runs on (what padding did; the row extent is a knob)."""
    return {a.name: a.extent * a.inner for a in task.context.layout(task, point).axes}


def case_row(text: str, db: str, peak: float) -> tuple[dict, object, object, float]:
    task, best, lat = tune(text, db)
    ops = task.op.op_count()
    row = {
        "case": text,
        "kernel_extents": padded_extents(task, best.point),
        "heron_ms": lat * 1e3,
        "heron_gops": ops / lat / 1e9,
        "pct_of_peak": 100 * ops / lat / 1e9 / peak,
        "peak_gops": peak,
        "best_point": best.point,
    }
    return row, task, best, lat


def part_a(db: str, peak: float) -> list[dict]:
    """Each group tuned, then its best points re-timed in alternating rounds (medians): the neighbours are
    compared under the same conditions of the shared host."""
    groups = []
    for group in PAIRS:
        if not selected(group[0]):
            continue
        tuned = [case_row(text, db, peak) for text in group]
        rounds: list[list[float]] = [[] for _ in group]
        for _ in range(ARGS.rounds):
            for i, (_, task, best, _) in enumerate(tuned):
                rounds[i].append(statistics.median(retime(task, [best.point], best.latency_s)[0]))
        rows = []
        for (row, task, _, _), lats in zip(tuned, rounds):
            lat = statistics.median(lats)
            gops = task.op.op_count() / lat / 1e9
            row.update(heron_ms=lat * 1e3, heron_ms_rounds=[x * 1e3 for x in lats], heron_gops=gops, pct_of_peak=100 * gops / peak)
            rows.append(row)
            print(json.dumps(row), flush=True)
        awkward = rows[0]["pct_of_peak"]
        groups.append({"cases": rows, "gap_points": max(r["pct_of_peak"] for r in rows[1:]) - awkward, "trials": ARGS.trials})
    return groups


VENDOR_VERSIONS: dict[str, str] = {}


def part_b(db: str, peak: float) -> list[dict]:
    from vendor import measure_vendor

    rows = []
    for name, text in LAYERS.items():
        if not selected(text):
            continue
        row, task, best, lat = case_row(text, db, peak)
        heron, vendor = [lat], []
        for i in range(ARGS.rounds):  # alternate: a slow spell of the host shows in one round of both
            if i:
                heron.append(statistics.median(retime(task, [best.point], best.latency_s)[0]))
            v = measure_vendor(task.op.name, task.op.shape.as_ints(), ARGS.cores, isa="vnni", timeout=600)
            VENDOR_VERSIONS.update({k: v.get(k) for k in ("torch", "onnxruntime", "onednn_isa") if v.get(k)})
            if v.get("best"):
                vendor.append(v["best"])
        lat = statistics.median(heron)
        row.update(layer=name, heron_ms=lat * 1e3, heron_ms_rounds=[x * 1e3 for x in heron])
        row["heron_gops"] = task.op.op_count() / lat / 1e9
        row["pct_of_peak"] = 100 * row["heron_gops"] / peak
        if vendor:
            paths = [v["path"] for v in vendor]
            row["vendor_vnni"] = {
                "path": max(set(paths), key=paths.count),
                "ms": statistics.median(v["ms"] for v in vendor),
                "ms_rounds": [v["ms"] for v in vendor],
            }
            row["speedup_vs_vendor_vnni"] = row["vendor_vnni"]["ms"] / row["heron_ms"]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


NOTES = "## Notes"


def write(stem: str, doc: dict) -> None:
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=1)
    info = doc["machine"]
    lines = [
        "# Awkward shapes on dlboost (issue 18)",
        "",
        f"{info['date']}, {info['cpu']} (LLVM `{info['llvm_cpu']}`), VNNI {info['vnni']}, AMX {info['amx']}; "
        f"versions {info['versions']}, Python {info['python']}; vendor {doc.get('vendor_versions')}.",
        f"Kernels and vendor on {ARGS.cores} thread(s), pinned to one core (taskset) while other work ran on the other; "
        f"{ARGS.trials} trials per case ({ARGS.search} + {ARGS.model}), the 3 best re-timed. VNNI peak measured in the "
        f"same run as each row (last run: {doc['peak_gops']:.0f} GOPS). % of peak uses the operators' logical op counts.",
        "",
        f"Command: `{doc['command']}`",
        "",
    ]
    if doc.get("pairs"):
        lines += ["## (a) Padding cost: awkward shape vs its divisible neighbours", ""]
        lines += ["| case | kernel extents | ms | GOPS | % of peak |", "|---|---|---:|---:|---:|"]
        for group in doc["pairs"]:
            for r in group["cases"]:
                ext = ",".join(f"{k}={v}" for k, v in r["kernel_extents"].items())
                lines.append(f"| `{r['case']}` | {ext} | {r['heron_ms']:.4f} | {r['heron_gops']:.1f} | {r['pct_of_peak']:.1f} |")
            trials = group.get("trials", doc["trials"])
            lines.append(f"| **gap to the best neighbour** ({trials} trials per case) | | | | **{group['gap_points']:.1f} points** |")
        lines.append("")
    if doc.get("layers"):
        lines += ["## (b) Real-network layers vs the best VNNI vendor path", ""]
        lines += ["| layer | case | Heron ms | % of peak | vendor (VNNI) | vendor ms | speedup |", "|---|---|---:|---:|---|---:|---:|"]
        for r in doc["layers"]:
            v = r.get("vendor_vnni") or {}
            sp = r.get("speedup_vs_vendor_vnni")
            lines.append(
                f"| {r['layer']} | `{r['case']}` | {r['heron_ms']:.4f} | {r['pct_of_peak']:.1f} | {v.get('path', '-')} | "
                f"{v.get('ms', float('nan')):.4f} | {f'{sp:.2f}x' if sp else '-'} |"
            )
        sps = [r["speedup_vs_vendor_vnni"] for r in doc["layers"] if r.get("speedup_vs_vendor_vnni")]
        if sps:
            gm = math.exp(sum(map(math.log, sps)) / len(sps))
            lines += ["", f"Geomean speedup {gm:.2f}x over {len(sps)} layers; lowest {min(sps):.2f}x."]
    notes = ""
    if os.path.exists(stem + ".md"):  # the hand-written notes of the file stay (from "## Notes" on)
        with open(stem + ".md") as f:
            old = f.read()
        notes = old[old.index(NOTES) :] if NOTES in old else ""
    with open(stem + ".md", "w") as f:
        f.write("\n".join(lines) + "\n" + (f"\n{notes}" if notes else ""))


def main() -> None:
    os.makedirs(ARGS.out, exist_ok=True)
    info = machine()
    stem = os.path.join(ARGS.out, f"awkward_shapes_{info['llvm_cpu']}_{ARGS.cores}c")
    db = ARGS.db or os.path.join(tempfile.mkdtemp(prefix="heron-awkward-"), "records.db")
    peak = max(measure_peak(ARGS.cores) for _ in range(3))  # the best of 3: a busy neighbour only lowers it
    print(f"VNNI peak: {peak:.0f} GOPS on {ARGS.cores} thread(s)", flush=True)
    doc = {"machine": info, "peak_gops": peak, "command": " ".join(["python", *sys.argv]), "cores": ARGS.cores, "trials": ARGS.trials}
    if os.path.exists(stem + ".json"):  # a run of one part keeps the other's results
        with open(stem + ".json") as f:
            old = json.load(f)
        doc.update({k: old[k] for k in ("layers", "vendor_versions", "pairs") if k in old})
    if "b" in ARGS.parts:
        doc["layers"] = merged(doc.get("layers", []), part_b(db, peak), lambda r: r["case"], list(LAYERS.values()))
        doc["vendor_versions"] = {**doc.get("vendor_versions", {}), **VENDOR_VERSIONS}
        write(stem, doc)
    if "a" in ARGS.parts:
        doc["pairs"] = merged(doc.get("pairs", []), part_a(db, peak), lambda g: g["cases"][0]["case"], [g[0] for g in PAIRS])
        write(stem, doc)


def merged(old: list[dict], new: list[dict], key, order: list[str]) -> list[dict]:
    """The rows of this run, and those of an earlier run (``--only``) for the cases it did not re-run, in ``order``."""
    rows = {key(r): r for r in old if key(r) in order}
    rows.update({key(r): r for r in new})
    return sorted(rows.values(), key=lambda r: order.index(key(r)))


if __name__ == "__main__":
    main()
