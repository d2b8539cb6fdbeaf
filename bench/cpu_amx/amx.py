"""AMX benchmark: the figure-8 GEMM, bmm and conv2d cases plus GEMM 1024^3 / 4096^3, int8 (or bf16 with
--in-dtype bfloat16), tuned on target ``amx`` next to PyTorch's oneDNN paths of the same dtype (int8: bench/vendor.py's
int8 paths; bf16: torch matmul / linear / conv2d in bf16), ONNX Runtime's int8 paths and the AMX peak
(bench/amx_peak.py), all measured in one run, at the plan's thread count; writes a table and a chart.

Tuning here is ``crand`` without a cost model: random valid points of the CP-SAT space, each
built, checked against numpy and timed; the fastest few (--retime-top) are re-built and re-timed with more
repeats, and the best re-timed median is reported (a single lucky tuning measurement does not decide). The
two halves can run on different machines, since OR-Tools need not exist where the kernels run:

    python bench/cpu_amx/amx.py plan --cores 16 --points 24 --l1-kib 48 --l2-kib 2048 --out plan16.json   # any machine
    python bench/cpu_amx/amx.py run plan16.json --out bench/results/cpu_amx                              # a CPU with AMX
    python bench/cpu_amx/amx.py all --cores 2 --points 24                                                 # both, here
    python bench/cpu_amx/amx.py vendor plan16.json --cases bmm:B1 conv2d:C2D1      # oneDNN alone, to re-check a vendor figure
    python bench/cpu_amx/amx.py plan --cores 1 --points 6 --cases gemm:G2 --structured parts.json --out plan1.json
        # parts.json {"gemm:G2": [{"lane_first_2": 1, "k1": [8, 16], "_n": 4}, ...]}: points drawn from such
        # partial points first (completed by CP-SAT, so valid), then 6 random ones

``run`` writes amx_<llvm cpu>_<cores>c.{json,md,png} under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, BENCH)  # bench/'s shared helpers (common, vendor, metaschedule), after this script's folder

FIGURE8 = "gemm:G1 gemm:G2 gemm:G3 gemm:G4 gemm:G5 bmm:B1 bmm:B2 bmm:B3 bmm:B4 " + " ".join(f"conv2d:C2D{i}" for i in range(1, 7))


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("plan", "all"):
        p = sub.add_parser(name)
        p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="threads a kernel may use")
        p.add_argument("--points", type=int, default=24, help="valid points measured per case")
        p.add_argument("--cases", nargs="+", default=FIGURE8.split(), help="OP:PRESET or OP:K=V,...")
        p.add_argument("--in-dtype", default="int8", choices=["int8", "bfloat16"])
        p.add_argument("--l1-kib", type=int, help="L1d per core of the machine that will run the kernels (default: this one's)")
        p.add_argument("--l2-kib", type=int, help="L2 per core, likewise")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--structured",
            help="JSON file {OP:LABEL: [partial point, ...]}: each partial (a value or a list of allowed values per knob; "
            "'_n': how many distinct points to draw from it, default 1) is completed by CP-SAT, so every point is valid; "
            "drawn before the --points random ones, partials that no valid point satisfies are reported and skipped",
        )
        p.add_argument("--out", default=None)
    run = sub.add_parser("run")
    run.add_argument("plan")
    run.add_argument("--out", default=os.path.join(BENCH, "results", "cpu_amx"))
    run.add_argument("--parallel", type=int, default=max(1, len(os.sched_getaffinity(0)) - 1), help="build workers")
    run.add_argument("--no-vendor", action="store_true")
    run.add_argument("--tag", default="", help="suffix of the result files")
    run.add_argument("--retime-top", type=int, default=3, help="re-time this many of the fastest points")
    vend = sub.add_parser(
        "vendor", help="re-measure only PyTorch's oneDNN paths (int8, or bf16 for bf16 cases) for cases of a plan"
    )
    vend.add_argument("plan")
    vend.add_argument("--cases", nargs="+", help="OP:LABEL of the plan (default: all)")
    return ap.parse_args()


ARGS = parse()
OUT_DTYPE = {"int8": "int32", "bfloat16": "float32"}
VENDORS = ("onednn", "onnxruntime")  # the result keys of the vendor libraries timed next to Heron


def make_plan() -> dict:
    import random

    from heron_core import cli
    from heron_core.config import parse_shape
    from heron_core.registry import registry
    from heron_core.space import SearchSpace, point_key
    from heron_core.task import PluginRef, Task, TaskSpec

    structured = {}
    if ARGS.structured:
        with open(ARGS.structured) as f:
            structured = json.load(f)
    target = {"num_cores": ARGS.cores}
    target.update({k: v for k, v in (("l1_kib", ARGS.l1_kib), ("l2_kib", ARGS.l2_kib)) if v})
    cases = []
    for text in ARGS.cases:
        op, _, shape_text = text.partition(":")
        shape = parse_shape(registry().get("operator", op).factory, cli.parse_shape(shape_text))
        spec = TaskSpec(
            target=PluginRef(name="amx", params=target),
            op=op,
            shape=shape,
            in_dtype=ARGS.in_dtype,
            out_dtype=OUT_DTYPE[ARGS.in_dtype],
        )
        task = Task(spec)
        label = shape_text if "=" not in shape_text else task.op.shape_label()
        space, rng = SearchSpace(task), random.Random(ARGS.seed)
        points, keys = [], set()
        for partial in structured.get(f"{op}:{label}", []):
            partial = dict(partial)
            want, got = partial.pop("_n", 1), 0
            for _ in range(4 * want):
                point = space.complete(partial, rng)
                if point is None:
                    print(f"  {op}:{label}: no valid point satisfies {partial}", flush=True)
                    break
                key = point_key(point)
                if key not in keys:
                    keys.add(key)
                    points.append(point)
                    got += 1
                if got == want:
                    break
        n_structured = len(points)
        points += space.sample(ARGS.points, rng, exclude=keys)
        cases.append({"label": label, "op": op, "shape": task.op.shape.model_dump(), "in_dtype": ARGS.in_dtype, "points": points})
        print(f"planned {op}:{label}: {len(points)} points ({n_structured} structured)", flush=True)
    return {
        "heron_amx_plan": 1,
        "target": target,
        "sampler": "SearchSpace.sample (crand, no cost model)"
        + (f" after the structured partial points of {ARGS.structured}" if structured else ""),
        "seed": ARGS.seed,
        "cases": cases,
    }


def run_plan(plan: dict, out_dir: str, tag: str = "") -> dict:
    cores = plan["target"]["num_cores"]
    for var in ("TVM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(cores)

    from amx_peak import measure_peak
    from common import machine

    from heron_core.runner import LocalRunner, LocalRunnerParams
    from heron_core.task import PluginRef, Task, TaskSpec

    os.makedirs(out_dir, exist_ok=True)
    target = {"microkernel": "amx", **plan["target"]}  # 'generic' only to try this script on a CPU without AMX
    first = plan["cases"][0]
    probe = Task(
        TaskSpec(
            target=PluginRef(name="amx", params=target),
            op=first["op"],
            shape=first["shape"],
            in_dtype=first["in_dtype"],
            out_dtype=OUT_DTYPE[first["in_dtype"]],
        )
    )
    probe.target.check_host()
    amx = target["microkernel"] == "amx"
    peaks = {}
    for kind in sorted({c["in_dtype"] for c in plan["cases"]} | {"int8"}):
        nan = float("nan")
        peaks[kind] = {"1": measure_peak(1, kind), str(cores): measure_peak(cores, kind)} if amx else {"1": nan, str(cores): nan}
        one, all_ = peaks[kind]["1"], peaks[kind][str(cores)]
        print(f"AMX {kind} peak: {one:.0f} GOPS on 1 core, {all_:.0f} GOPS on {cores}", flush=True)
    peak = peaks["int8"]
    result = {
        "benchmark": "amx operators vs PyTorch/oneDNN (int8 paths for int8 cases, bf16 paths for bf16 cases)",
        "machine": {**machine(), "cores_used": cores},
        "target": target,
        "tuning": f"{plan['sampler']}, seed {plan['seed']}; best re-built and re-timed (median of 10 repeats)",
        "amx_peak_gops": peak,
        "amx_peak_gops_by_dtype": peaks,
        "results": [],
    }
    stem = os.path.join(out_dir, f"amx_{result['machine']['llvm_cpu']}_{cores}c{tag}")
    tuner = LocalRunner(
        LocalRunnerParams(parallel=ARGS.parallel, number=2, repeat=3, min_repeat_ms=10, build_timeout=300, run_timeout=120)
    )
    retimer = LocalRunner(
        LocalRunnerParams(parallel=1, number=5, repeat=10, min_repeat_ms=50, build_timeout=300, run_timeout=300)
    )
    try:
        for case in plan["cases"]:
            spec = TaskSpec(
                target=PluginRef(name="amx", params=target),
                op=case["op"],
                shape=case["shape"],
                in_dtype=case["in_dtype"],
                out_dtype=OUT_DTYPE[case["in_dtype"]],
            )
            task = Task(spec)
            results = list(tuner.run(task, case["points"]))
            ok = [r for r in results if r.ok]
            failures: dict[str, int] = {}
            for r in results:
                if not r.ok:
                    failures[r.status.value] = failures.get(r.status.value, 0) + 1
            row = {
                "case": f"{case['op']}:{case['label']}",
                "op": case["op"],
                "in_dtype": case["in_dtype"],
                "shape": case["shape"],
                "points": len(results),
                "failures": failures,
                "measured": [{"point": r.point, "ms": r.latency * 1e3} for r in ok],
            }
            if failures:
                row["first_error"] = next(r.error for r in results if not r.ok)[:500]
            ops = task.op.op_count()
            if ok:
                best, lat, retimed = retime(retimer, task, ok, ARGS.retime_top)
                row.update(
                    latency_ms_tuning=best.latency * 1e3,
                    latency_ms=lat * 1e3,
                    gops=ops / lat / 1e9,
                    pct_of_peak=100 * ops / lat / 1e9 / peaks[case["in_dtype"]][str(cores)],
                    best_point=best.point,
                    retimed=retimed,
                )
            if not ARGS.no_vendor:
                row["onednn"] = onednn(task.op, cores) if case["in_dtype"] == "int8" else torch_bf16(task.op, cores)
                if case["in_dtype"] == "int8":
                    row["onnxruntime"] = onnxruntime_int8(task.op, cores)
                for lib in VENDORS:
                    if ok and row.get(lib, {}).get("ms"):
                        row[f"speedup_vs_{lib}"] = row[lib]["ms"] / row["latency_ms"]
            result["results"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "best_point"}), flush=True)
            write(result, stem)
    finally:
        tuner.close()
        retimer.close()
    print(markdown(result), flush=True)
    return result


def retime(retimer, task, ok: list, top: int) -> tuple:
    """Re-time the ``top`` fastest tuning results; the one with the lowest re-timed median wins.
    Returns (its tuning result, its re-timed median in seconds, every re-timing as records)."""
    import statistics

    first = sorted(ok, key=lambda r: r.latency)[: max(1, top)]
    again = list(retimer.run(task, [r.point for r in first]))
    lats = [statistics.median(a.costs) if a.ok and a.costs else r.latency for r, a in zip(first, again)]
    win = min(range(len(first)), key=lambda i: lats[i])
    records = [{"point": r.point, "ms_tuning": r.latency * 1e3, "ms": lat * 1e3} for r, lat in zip(first, lats)]
    return first[win], lats[win], records


def onednn(op, threads: int) -> dict:
    """PyTorch's int8 paths backed by oneDNN (torch._int_mm; quantized linear / conv2d, engines onednn
    and x86), each checked against the reference; the fastest correct one."""
    import vendor

    libs = {"torch": vendor.load("torch"), "onnx": (None, "not measured here"), "onnxruntime": (None, "not measured here")}
    torch = libs["torch"][0]
    if torch is None:
        return {"skipped": libs["torch"][1]}
    saved = torch.get_num_threads(), torch.backends.quantized.engine
    torch.set_num_threads(threads)
    arrays = op.random_inputs(0)
    ctx = vendor.Ctx(op, arrays, op.reference(arrays), threads, libs)
    makers = [vendor.torch_qconv] if op.name == "conv2d" else [vendor.torch_int_mm, vendor.torch_qlinear]
    paths, isa = {}, None
    for maker in makers:
        for name, setup in maker(ctx):
            if "fbgemm" in name:
                continue
            paths[name], line = vendor.run_path(setup, ctx)
            isa = isa or line
    torch.set_num_threads(saved[0])
    torch.backends.quantized.engine = saved[1]
    return fastest(paths, isa, "no oneDNN int8 path passed its check")


def onnxruntime_int8(op, threads: int) -> dict:
    """ONNX Runtime's int8 paths (MatMulInteger; QLinearConv / ConvInteger for conv2d), on the same inputs,
    each checked against the reference; the fastest correct one, like ``onednn``."""
    import vendor

    libs = {name: vendor.load(name) for name in ("onnxruntime", "onnx")}
    missing = [why for module, why in libs.values() if module is None]
    if missing:
        return {"skipped": missing[0]}
    arrays = op.random_inputs(0)
    ctx = vendor.Ctx(op, arrays, op.reference(arrays), threads, libs)
    maker = vendor.ort_conv if op.name == "conv2d" else vendor.ort_matmul_integer
    paths = {name: vendor.run_path(setup, ctx)[0] for name, setup in maker(ctx)}
    return fastest(paths, None, "no ONNX Runtime int8 path passed its check")


def fastest(paths: dict, isa, none_passed: str) -> dict:
    """The fastest path that passed its check, with every path's figures; ``none_passed`` if none did."""
    good = {n: p for n, p in paths.items() if p.get("correct")}
    if not good:
        return {"skipped": none_passed, "paths": paths}
    name = min(good, key=lambda n: good[n]["ms"])
    return {
        "path": name,
        "ms": good[name]["ms"],
        "gops": good[name]["gops"],
        "onednn_isa": isa,
        "impl": good[name].get("onednn"),
        "paths": paths,
    }


def torch_bf16(op, threads: int) -> dict:
    """PyTorch's bf16 paths (oneDNN AMX bf16 on such a CPU: matmul / linear / bmm, conv2d in NCHW and
    channels-last), same inputs as Heron's, each checked against the f32 reference (bf16 output: max
    error within 2% of the largest |output|); the fastest correct one, like ``onednn`` for int8."""
    import numpy as np
    import vendor

    torch, why = vendor.load("torch")
    if torch is None:
        return {"skipped": why}
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    arrays = op.random_inputs(0)
    ref = op.reference(arrays).astype(np.float32)
    t = {k: torch.from_numpy(np.ascontiguousarray(v).view(np.int16)).view(torch.bfloat16) for k, v in arrays.items()}
    paths: dict[str, tuple] = {}
    if op.name in ("gemm", "dense", "bmm"):
        a, b = t["A"], t["B"]
        kn = b.transpose(-1, -2).contiguous() if op.name == "dense" else b  # B as K x N
        nk = b if op.name == "dense" else b.transpose(-1, -2).contiguous()  # B as N x K (linear's weight)
        paths["torch.matmul"] = (lambda: torch.matmul(a, kn), "B as K x N")
        if op.name != "bmm":
            paths["torch.nn.functional.linear"] = (lambda: torch.nn.functional.linear(a, nk), "weight N x K, transposed once")
    elif op.name == "conv2d":
        s, x, w = op.shape, t["x"], t["w"]
        conv = lambda x, w: torch.nn.functional.conv2d(x, w, None, s.stride, s.pad, s.dilation)  # noqa: E731
        xl, wl = x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        paths["torch.conv2d[nchw]"] = (lambda: conv(x, w), "NCHW")
        paths["torch.conv2d[channels_last]"] = (lambda: conv(xl, wl), "input and weight channels-last, converted once")
    else:
        return {"skipped": f"no PyTorch bf16 path for {op.name}"}
    results, isa = {}, None
    scale = float(np.abs(ref).max()) or 1.0
    for name, (call, note) in paths.items():
        found: dict = {}
        try:
            with vendor.onednn_trace(torch, found):
                out = call()
            err = float(np.abs(out.float().numpy().reshape(ref.shape) - ref).max()) / scale
            timing = vendor.time_call(call)
        except Exception as exc:  # a path that fails must not take the others down
            results[name] = {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:200]}"}
            continue
        isa = isa or found.get("isa")
        results[name] = {
            "ms": timing["median_s"] * 1e3,
            "ms_min": timing["min_s"] * 1e3,
            "gops": op.op_count() / timing["median_s"] / 1e9,
            "correct": err < 2e-2,
            "max_rel_error": err,
            "note": f"bf16 in, bf16 out (f32 accumulation); {note}",
            **({"onednn": found["impl"]} if found.get("impl") else {}),
        }
    torch.set_num_threads(saved)
    return fastest(results, isa, "no PyTorch bf16 path passed its check")


def geomean(xs: list[float]) -> float:
    import math

    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def write(result: dict, stem: str) -> None:
    for lib in VENDORS:
        speedups = [r[f"speedup_vs_{lib}"] for r in result["results"] if r.get(f"speedup_vs_{lib}")]
        result[f"geomean_speedup_vs_{lib}"] = geomean(speedups) if speedups else None
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=2)
    with open(stem + ".md", "w") as f:
        f.write(markdown(result))
    chart(result, stem + ".png")


def markdown(r: dict) -> str:
    m, cores = r["machine"], r["machine"]["cores_used"]
    peak = r["amx_peak_gops"][str(cores)]
    lines = [
        f"# {r['benchmark']} — {m['date']}",
        "",
        f"CPU: {m['cpu']} (LLVM `{m['llvm_cpu']}`), AMX {m['amx']}; {cores} of {m['cores_visible']} cores used "
        f"(TVM_NUM_THREADS / torch threads = {cores}). Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}.",
        f"Tuning: {r['tuning']}.",
        f"AMX int8 peak (tdpbusd, register-only, measured in this run): {r['amx_peak_gops']['1']:.0f} GOPS on 1 core, "
        f"{peak:.0f} GOPS on {cores}."
        + "".join(
            f" AMX {k} peak (tdpbf16ps): {v['1']:.0f} GFLOPS on 1 core, {v[str(cores)]:.0f} on {cores} (its rows' % of peak)."
            for k, v in r.get("amx_peak_gops_by_dtype", {}).items()
            if k != "int8"
        ),
        "",
        "| case | dtype | shape | points ok | Heron amx ms | GOPS | % of AMX peak | PyTorch/oneDNN ms (same dtype) | path "
        "| speedup vs PyTorch | ONNX Runtime ms (int8) | path | speedup vs ORT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["results"]:
        shape = ",".join(f"{k}={v}" for k, v in x["shape"].items())
        okn = x["points"] - sum(x["failures"].values())
        heron = (f"{x['latency_ms']:.4f} | {x['gops']:.0f} | {x['pct_of_peak']:.1f}%") if "latency_ms" in x else "– | – | –"
        vendors = []
        for lib in VENDORS:
            d = x.get(lib, {})
            vendors.append(f"{d['ms']:.4f} | {d['path']}" if d.get("ms") else f"– | {d.get('skipped', '–')}")
            vendors.append(f"{x[f'speedup_vs_{lib}']:.2f}x" if x.get(f"speedup_vs_{lib}") else "–")
        cells = [x["case"], x.get("in_dtype", "int8"), shape, f"{okn}/{x['points']}", heron, *vendors]
        lines.append(f"| {' | '.join(cells)} |")
    g, go = r.get("geomean_speedup_vs_onednn"), r.get("geomean_speedup_vs_onnxruntime")
    lines += [
        "",
        f"Geomean speedup vs the best PyTorch/oneDNN path of the same dtype: {g:.2f}x." if g else "",
        f"Geomean speedup vs the best ONNX Runtime int8 path: {go:.2f}x." if go else "",
        "",
    ]
    lines.append(
        "Heron latency: median of 10 repeats (5 calls each), re-built and re-checked, of the best of the fastest tuning "
        "points re-timed so; the packed weight is packed once ahead of the calls, bmm packs its B operand inside the "
        "kernel. oneDNN and ONNX Runtime: median of 7 repeats, "
        "quantized paths requantize their output (not exact, checked by correlation), torch._int_mm is exact; "
        "bf16 rows: PyTorch bf16 matmul / linear / conv2d (bf16 output, f32 accumulation; checked to 2% of the largest output)."
    )
    return "\n".join(lines) + "\n"


def chart(r: dict, path: str) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return
    rows = r["results"]
    labels = [x["case"].split(":")[1] for x in rows]
    heron = [x.get("gops", 0) for x in rows]
    vend = [x.get("onednn", {}).get("gops", 0) or 0 for x in rows]
    ort = [x.get("onnxruntime", {}).get("gops", 0) or 0 for x in rows]
    fig = Figure(figsize=(max(6, 0.7 * len(rows)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = range(len(rows))
    ax.bar([x - 0.27 for x in xs], heron, 0.27, label="Heron amx")
    ax.bar(list(xs), vend, 0.27, label="PyTorch oneDNN (same dtype)")
    ax.bar([x + 0.27 for x in xs], ort, 0.27, label="ONNX Runtime (int8)")
    ax.axhline(r["amx_peak_gops"][str(r["machine"]["cores_used"])], color="k", ls="--", lw=1, label="AMX peak")
    ax.set_xticks(list(xs), labels, rotation=45, ha="right")
    ax.set_ylabel("GOPS (int8) / GFLOPS (bf16)")
    ax.set_yscale("log")
    ax.set_title(f"{r['machine']['llvm_cpu']}, {r['machine']['cores_used']} cores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def vendor_only(plan: dict, cases: list[str] | None) -> None:
    """One JSON line per case: the fastest correct oneDNN int8 path and every path's median / min ms."""
    from heron_core.task import PluginRef, Task, TaskSpec

    cores = plan["target"]["num_cores"]
    for case in plan["cases"]:
        name = f"{case['op']}:{case['label']}"
        if cases and name not in cases:
            continue
        target = PluginRef(name="amx", params=plan["target"])
        dt = case["in_dtype"]
        spec = TaskSpec(target=target, op=case["op"], shape=case["shape"], in_dtype=dt, out_dtype=OUT_DTYPE[dt])
        d = onednn(Task(spec).op, cores) if dt == "int8" else torch_bf16(Task(spec).op, cores)
        paths = {k: (p.get("ms"), p.get("ms_min")) for k, p in d.get("paths", {}).items()}
        print(json.dumps({"case": name, "ms": d.get("ms"), "path": d.get("path"), "paths": paths}), flush=True)


def main() -> None:
    if ARGS.cmd == "vendor":
        with open(ARGS.plan) as f:
            vendor_only(json.load(f), ARGS.cases)
        return
    if ARGS.cmd == "run":
        with open(ARGS.plan) as f:
            run_plan(json.load(f), ARGS.out, ARGS.tag)
        return
    plan = make_plan()
    if ARGS.cmd == "plan":
        out = ARGS.out or f"amx_plan_{ARGS.cores}c.json"
        with open(out, "w") as f:
            json.dump(plan, f)
        print(f"wrote {out}")
        return
    ARGS.no_vendor, ARGS.parallel = False, max(1, len(os.sched_getaffinity(0)) - 1)
    run_plan(plan, ARGS.out or os.path.join(BENCH, "results", "cpu_amx"), "")


if __name__ == "__main__":
    main()
