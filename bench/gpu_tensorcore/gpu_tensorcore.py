"""Heron `tensorcore` vs PyTorch fp16 (cuBLAS / cuDNN) on the GPU it runs on, in the same run.

Cases: the paper's figure-6 Tensor Core cases (fp16 in, fp16 out/accumulate, as the original),
GEMM 1024^3 / 4096^3 / 8192^3 and a few transformer layers; the `W_` cases run the sm_90a wgmma
template (groups wgmma, wgmma_llm, wgmma_fig6, wgmma_conv: the convolutions as implicit GEMMs; fp16 or
bf16). The search is split so that the GPU machine needs neither OR-Tools nor a long lease:

1. `plan` (any machine, CP-SAT): valid points of every case's space, drawn at random
   (`--points`), or (`--guide` an earlier run's JSON) chosen by a LightGBM cost model trained on
   every measurement of that run, across cases (label: a point's speed relative to its case's
   best), as the top `--points` predictions out of `--candidates` fresh samples, plus that
   run's best point of each case.
2. `run` (the GPU machine): builds every point of every case in parallel worker processes
   (builds of later cases overlap the measuring of earlier ones), checks each kernel against
   numpy and times it; then, with no build running, re-times each case's best kernel and times
   PyTorch on the same operator (NCHW and channels-last layouts for convolutions).
3. `report`: the JSON -> markdown table, chart and JSON without the per-point log, which goes,
   with the earlier runs', to a compressed `_measurements.json.gz` (`run` writes the first three as it goes).

    python bench/gpu_tensorcore/gpu_tensorcore.py plan --groups all --points 10 --out .gpu/tc/plan1.json
    python bench/gpu_tensorcore/gpu_tensorcore.py run .gpu/tc/plan1.json --out $OUT          # on the GPU machine
    python bench/gpu_tensorcore/gpu_tensorcore.py plan --groups all --points 12 --guide run1.json --out .gpu/tc/plan2.json
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

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

# The wgmma path (sm_90a; issue 22): name -> (arch, input dtype); output in the input dtype, fp32 accumulation
_LLM = {"K": 4096, "N": 11008}
for _dt, _tag in (("float16", "F16"), ("bfloat16", "BF16")):
    for _n in (4096, 8192):
        CASES[f"W_GEMM{_n}_{_tag}"] = ("wgmma", "gemm", {"M": _n, "K": _n, "N": _n})
    for _m in (16, 128, 4096):
        CASES[f"W_LLM{_m}_{_tag}"] = ("wgmma_llm", "dense", {"M": _m, **_LLM})
for _name in ("G1", "G2", "G3", "G4", "G5", "B1", "B2", "B3", "B4", "B5", "B6"):
    CASES[f"W_{_name}"] = ("wgmma_fig6", *CASES[_name][1:])
for _name in [n for n, c in CASES.items() if c[0] in ("c2d", "c1d", "c3d", "dil")]:  # implicit GEMMs (cp.async gather)
    CASES[f"W_{_name}"] = ("wgmma_conv", *CASES[_name][1:])
CASE_TARGET = {n: ("sm_90a", "bfloat16" if n.endswith("_BF16") else "float16") for n in CASES if n.startswith("W_")}


TARGET_PARAMS = {"arch": "sm_90"}
DTYPE = "float16"  # inputs, accumulation and output (the original's figure 6)
TUNE = {"number": 5, "repeat": 3, "min_repeat_ms": 10}
RETIME = {"repeat": 7, "min_repeat_ms": 40}
POINT_TIMEOUT_S = float(os.environ.get("HERON_POINT_TIMEOUT_S", 180))  # check + time one point (a hung kernel ends here)
CHECKED_DURING_TUNING = 1 << 20  # output elements compared with numpy per candidate (all of them at re-timing)
HANDWRITTEN_WMMA_TFLOPS = 279  # ../shared/gpu/README.md: best fixed WMMA schedule of a 4096^3 GEMM on an H100


def task_of(name: str):
    from heron_core.task import PluginRef, Task, TaskSpec

    _, op, shape = CASES[name]
    arch, dtype = CASE_TARGET.get(name, (TARGET_PARAMS["arch"], DTYPE))
    return Task(TaskSpec(target=PluginRef(name="tensorcore", params={**TARGET_PARAMS, "arch": arch}), op=op, shape=shape,
                         in_dtype=dtype, out_dtype=dtype))  # fmt: skip


# --- 1. plan: valid points, at random or guided by a cost model ----------------------------
def feature_row(task, point: dict) -> dict[str, float]:
    """A point of a case as the cross-case model sees it: knobs, the loop nest's quantities and
    the case's GEMM extents, log2-scaled."""
    view = task.context.compute(task).view
    Mp, Np, Kp = view.padded
    row = {"mma": 0, **point, **task.context.features(task, point), "case_m": Mp, "case_n": Np, "case_k": Kp,
           "case_batch": view.batch, "b_nk": int(view.b_layout == "nk"), "gathered": int(bool(view.layouts))}  # fmt: skip
    return {k: math.log2(1 + float(v)) for k, v in row.items()}


def fit_guide(previous: list[dict]):
    """LightGBM regression of log(case best latency / latency) over every successful measurement
    of earlier runs (the best per case over all of them)."""
    import lightgbm
    import numpy as np

    rows, labels = [], []
    for name, measured in _measured(previous).items():
        task, best = task_of(name), min(m["latency_s"] for m in measured)
        for m in measured:
            rows.append(feature_row(task, m["point"]))
            labels.append(math.log(best / m["latency_s"]))
    names = sorted(set().union(*rows))
    params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 5, "verbose": -1}
    data = lightgbm.Dataset(np.array([[r.get(n, 0.0) for n in names] for r in rows]), np.array(labels))
    return lightgbm.train(params, data, num_boost_round=300), names


def load_runs(path: str) -> list[dict]:
    """A run's JSON, or every run in a results `_measurements.json.gz` archive ({run: {case: measurements}})."""
    if not path.endswith(".gz"):
        return [json.loads(Path(path).read_text())]
    archive = json.loads(gzip.decompress(Path(path).read_bytes()))
    return [{"cases": [{"case": c, "measurements": ms} for c, ms in run.items()]} for run in archive.values()]


def _measured(previous: list[dict]) -> dict[str, list[dict]]:
    """case -> its successful measurements in earlier runs."""
    out: dict[str, list[dict]] = {}
    for run in previous:
        for case in run["cases"]:
            out.setdefault(case["case"], []).extend(
                {**m, "point": {**PAST_KNOBS, **m["point"]}}
                for m in case.get("measurements", []) if m["status"] == "ok"
            )
    return {k: v for k, v in out.items() if v}


# knobs added after earlier runs, with the value those runs used: all WMMA (mma), the wgmma epilogue from
# registers, no split-K, (convolutions) the gather through L2
PAST_KNOBS = {"mma": 0, "epilogue": 0, "split_k": 1, "gather_cache": 0}


def _in_space(space, point: dict) -> dict:
    """An earlier run's point in today's space: knobs added since then take the value that run used."""
    return {k: v for k, v in {**PAST_KNOBS, **point}.items() if k in space.knobs}


def _variants(space, points: list[dict], knob: str) -> list[dict]:
    """Each point with every other valid value of ``knob`` (e.g. split_k for the best tiles)."""
    if knob not in space.knobs:
        return []
    return [q for p in points for v in space.knobs[knob].values if v != p[knob]
            for q in [{**p, knob: v}] if space.is_valid(q)]  # fmt: skip


def _fresh(space, n: int, rng: random.Random, seen: list[str], fixed: dict) -> list[dict]:
    """Up to ``n`` distinct valid points agreeing with ``fixed`` (all of ``space.sample`` when empty)."""
    from heron_core.space import point_key

    if not fixed:
        return space.sample(n, rng, exclude=seen)
    keys, out = set(seen), []
    for _ in range(3 * n):
        p = space.complete(fixed, rng)
        if p is not None and point_key(p) not in keys:
            keys.add(point_key(p))
            out.append(p)
            if len(out) == n:
                break
    return out


def make_plan(names: list[str], points: dict[str, int], seed: int, guides: list[str], candidates: int, explore: int,
              fixed: dict | None = None, include: list[dict] | None = None, vary: str = "", vary_top: int = 3) -> dict:
    """``points``: per group, or "*" for any other; guided runs add ``explore`` per 10 points.
    ``fixed`` knob values restrict the fresh samples (e.g. mma=1: the earlier runs' best, all wmma,
    is then measured next to its mma twin and the model's top mma points). ``vary`` a knob: the
    first ``vary_top`` given and sampled or guided points with each of its other valid values too (e.g. split_k)."""
    import numpy as np

    from heron_core.space import SearchSpace, point_key

    rng = random.Random(seed)
    previous = [run for g in guides for run in load_runs(g)]
    model = fit_guide(previous) if previous else None
    measured = _measured(previous)
    cases = []
    for name in names:
        task = task_of(name)
        space = SearchSpace(task)
        n = points.get(CASES[name][0], points["*"])
        if model is None:
            chosen = _fresh(space, n, rng, [], fixed or {})
        else:
            before = [{**m, "point": _in_space(space, m["point"])} for m in measured.get(name, [])]
            before = [m for m in before if space.is_valid(m["point"])]
            seen = [point_key(m["point"]) for m in before]
            pool = _fresh(space, candidates, rng, seen, fixed or {})
            reg, feats = model
            scores = reg.predict(np.array([[feature_row(task, p).get(f, 0.0) for f in feats] for p in pool]))
            ranked = [pool[i] for i in np.argsort(-scores)]
            best = [min(before, key=lambda m: m["latency_s"])["point"]] if before else []
            twin = [{**best[0], **fixed}] if best and fixed and space.is_valid({**best[0], **fixed}) else []
            best += [p for p in twin if point_key(p) not in {point_key(b) for b in best}]
            ranked = [p for p in ranked if point_key(p) not in {point_key(b) for b in best}]
            more = explore * n // 10
            chosen = best + ranked[:n] + ranked[n:][: more * 4 : 4][:more]
        head = chosen[:vary_top]  # the earlier best and the model's top picks (or the first fresh samples)
        if include:  # given points first, in each case whose space holds them
            given = [q for p in include for q in [_in_space(space, p)] if space.is_valid(q)]
            head = given[:vary_top] + head
            keys = {point_key(p) for p in given}
            chosen = given + [p for p in chosen if point_key(p) not in keys]
        if vary:
            keys = {point_key(p) for p in chosen}
            for p in _variants(space, head, vary):
                if point_key(p) not in keys:
                    keys.add(point_key(p))
                    chosen.append(p)
        cases.append({"case": name, "points": chosen})
        print(f"{name}: {len(chosen)} points", flush=True)
    counts = ", ".join(f"{k} {v}" for k, v in points.items())
    sampler = (f"the best point of {', '.join(map(os.path.basename, guides))}; the top ({counts}) of {candidates} fresh "
               f"samples by a cost model trained on those runs; {explore} per 10 more from the rest of the ranking"
               if guides else f"random valid ({counts})")  # fmt: skip
    if include:
        sampler = f"{len(include)} given points (where valid), then " + sampler
    if vary:
        sampler += f"; the first {vary_top} given and {vary_top} other points of each case also with every other valid {vary}"
    if fixed:
        sampler += f"; fresh samples restricted to {', '.join(f'{k}={v}' for k, v in fixed.items())}"
        sampler += " (the earlier best's twin with them too)" if guides else ""
    return {"sampler": sampler, "seed": seed, "cases": cases}


def append_plan(plan: dict, extra: dict) -> None:
    """``extra``'s points after ``plan``'s: a case in both gets the points it lacks, others come last."""
    from heron_core.space import point_key

    by_name = {c["case"]: c for c in plan["cases"]}
    for case in extra["cases"]:
        if case["case"] not in by_name:
            plan["cases"].append(case)
            continue
        keys = {point_key(p) for p in by_name[case["case"]]["points"]}
        by_name[case["case"]]["points"] += [p for p in case["points"] if point_key(p) not in keys]
    plan["sampler"] += f"; then (points not already planned) {', '.join(c['case'] for c in extra['cases'])}: {extra['sampler']}"


# --- 2. run: build, check and time every point; re-time the best; PyTorch ------------------
def _warm_worker(env: dict[str, str]) -> None:
    """Start-up work (importing TVM and the plugin) outside the build and run timeouts."""
    os.environ.update(env)
    import heron_gpu_tensorcore.context  # noqa: F401
    import tvm  # noqa: F401


def run_plan(plan: dict, out: Path, stem: str, parallel: int, deadline_s: float) -> dict:
    """Measure every planned point; results are written after every case."""
    import multiprocessing

    from pebble import ProcessPool

    from heron_core.runner import build_one

    t_start = time.time()
    tasks = {c["case"]: task_of(c["case"]) for c in plan["cases"]}
    next(iter(tasks.values())).target.check_host()
    env = next(iter(tasks.values())).target.runtime_env()
    ctx = multiprocessing.get_context("spawn")
    builders = ProcessPool(parallel, context=ctx, initializer=_warm_worker, initargs=(env,))
    measurer = Measurer(env)
    tmp = tempfile.mkdtemp(prefix="heron-tc-")
    jobs: dict[str, list] = {}
    for ci, case in enumerate(plan["cases"]):  # every build at once: later cases build while earlier ones are measured
        spec = tasks[case["case"]].spec.model_dump_json()
        jobs[case["case"]] = []
        for pi, point in enumerate(case["points"]):
            path = f"{tmp}/c{ci}_{pi}.so"
            jobs[case["case"]].append((point, path, builders.schedule(build_one, (spec, point, path), timeout=180)))
    result = {"machine": machine(), "sampler": plan["sampler"], "seed": plan["seed"], "cases": []}
    best_paths = {}
    try:
        for case in plan["cases"]:
            name = case["case"]
            if time.time() - t_start > deadline_s:
                for _, _, fut in jobs[name]:
                    fut.cancel()
                result["cases"].append({"case": name, "skipped": f"tuning deadline ({deadline_s:.0f} s) reached"})
                continue
            row, best_paths[name] = measure_case(name, tasks[name], jobs[name], measurer)
            result["cases"].append(row)
            print(json.dumps({k: v for k, v in row.items() if k not in ("measurements", "best_point")}), flush=True)
            write(result, out, stem)
        builders.stop()
        builders.join()
        result["tuning_s"] = round(time.time() - t_start, 1)
        for row in result["cases"]:  # quiet: no build running
            if "skipped" in row:
                continue
            if best_paths.get(row["case"]):
                retime(row, tasks[row["case"]], best_paths[row["case"]], measurer)
            compare_torch(row)
            write(result, out, stem)
    finally:
        builders.stop()
        measurer.stop()
    result["total_s"] = round(time.time() - t_start, 1)
    write(result, out, stem)
    return result


_CASES: dict[str, tuple] = {}  # per measuring process: spec -> task, inputs, expected output, checked elements


def _case_data(spec_json: str) -> tuple:
    import numpy as np

    from heron_core.task import Task, TaskSpec

    if spec_json not in _CASES:
        task = Task(TaskSpec.model_validate_json(spec_json))
        inputs = task.op.random_inputs(seed=0)
        expected = task.op.reference(inputs)
        size = expected.size
        picks = None if size <= CHECKED_DURING_TUNING else np.random.default_rng(0).choice(size, CHECKED_DURING_TUNING, False)
        _CASES[spec_json] = (task, inputs, expected, picks)
    return _CASES[spec_json]


def measure_point(spec_json: str, path: str, timing: dict, full_check: bool) -> tuple[str, list[float], str]:
    """Run the kernel once, compare its output with numpy's (a fixed random sample of 2^20
    elements while tuning: the full comparison of a 96x2048x2048 output takes seconds), then time it."""
    from heron_core import tvm_compat
    from heron_core.runner import outputs_match

    task, inputs, expected, picks = _case_data(spec_json)
    dev = task.target.device()
    args = tvm_compat.to_device(task.context.kernel_args(task, inputs), dev)
    module = tvm_compat.load(path)
    module["main"](*args)
    got = args[-1].numpy()
    if not full_check and picks is not None:
        got, expected = got.reshape(-1)[picks], expected.reshape(-1)[picks]
    if not outputs_match(got, expected, task.context.tolerance(task)):
        return "wrong_result", [], f"outputs differ from numpy's ({'all' if full_check else 'sampled'} elements compared)"
    costs = tvm_compat.time_kernel(module, dev, args, timing["number"], timing["repeat"], timing["min_repeat_ms"], False)
    return "ok", costs, ""


class Measurer:
    """One process that runs kernels; replaced after an error, since a CUDA fault (an illegal
    address) leaves the process's context unusable for every later kernel."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.pool = None
        self.restart()

    def restart(self) -> None:
        import multiprocessing

        from pebble import ProcessPool

        if self.pool is not None:
            self.pool.stop()
            self.pool.join()
        self.pool = ProcessPool(1, context=multiprocessing.get_context("spawn"), initializer=_warm_worker, initargs=(self.env,))

    def call(self, fn, args: tuple, timeout: float):
        try:
            return self.pool.schedule(fn, args, timeout=timeout).result()
        except Exception:
            self.restart()
            raise

    def stop(self) -> None:
        self.pool.stop()
        self.pool.join()


def measure_case(name: str, task, jobs: list, measurer: Measurer) -> tuple[dict, str | None]:
    import statistics

    from heron_core.runner import error_summary

    spec = task.spec.model_dump_json()
    measurements, best = [], (math.inf, None, None)
    t0 = time.time()
    for point, path, fut in jobs:
        m = {"point": point}
        try:
            m["build_s"] = round(fut.result(), 2)
            status, costs, error = measurer.call(measure_point, (spec, path, TUNE, False), timeout=POINT_TIMEOUT_S)
            m.update(status=status, error=error[:300])
            if costs:
                m["latency_s"] = statistics.median(costs)
        except Exception as exc:  # build error/timeout, a crash of the measuring process
            m.update(status=type(exc).__name__, error=error_summary(exc, 300))
        measurements.append(m)
        if m.get("status") == "ok" and m["latency_s"] < best[0]:
            if best[1]:
                _remove(best[1])
            best = (m["latency_s"], path, point)
        else:
            _remove(path)
    failures = {}
    for m in measurements:
        if m["status"] != "ok":
            failures[m["status"]] = failures.get(m["status"], 0) + 1
    _, op, shape = CASES[name]
    row = {"case": name, "group": CASES[name][0], "op": op, "shape": shape, "points": len(measurements),
           "failures": failures, "measure_s": round(time.time() - t0, 1), "measurements": measurements}  # fmt: skip
    if best[1]:
        row.update(best_point=best[2], tuning_ms=best[0] * 1e3)
    else:
        row["first_error"] = next((m.get("error") for m in measurements), "")
    return row, best[1]


def retime(row: dict, task, path: str, measurer: Measurer) -> None:
    """The best kernel again, its whole output checked, with more repeats (median of 7, each
    >= 40 ms of calls)."""
    import statistics

    params = {**RETIME, "number": max(1, min(100, round(2e-3 / (row["tuning_ms"] * 1e-3))))}
    try:
        status, costs, error = measurer.call(measure_point, (task.spec.model_dump_json(), path, params, True), timeout=300)
    except Exception as exc:
        status, costs, error = "error", [], f"{type(exc).__name__}: {exc}"[:300]
    _remove(path)
    if not costs:
        row["retime_error"] = f"{status}: {error}"
        return
    row["heron_ms"] = statistics.median(costs) * 1e3
    row["heron_tflops"] = task.op.op_count() / (row["heron_ms"] * 1e-3) / 1e12


def compare_torch(row: dict) -> None:
    op, shape = row["op"], row["shape"]
    flops = task_of(row["case"]).op.op_count()
    layouts = ("nchw", "channels_last") if op in ("conv1d", "conv2d", "conv3d", "dil", "t2d") else ("nchw",)
    for layout in layouts:
        try:
            row[f"torch_ms_{layout}"] = torch_ms(op, shape, layout, CASE_TARGET.get(row["case"], ("", DTYPE))[1])
        except Exception as exc:  # report, go on
            row[f"torch_error_{layout}"] = f"{type(exc).__name__}: {exc}"[:300]
    times = [row[f"torch_ms_{lay}"] for lay in layouts if f"torch_ms_{lay}" in row]
    if times:
        row["torch_ms"] = min(times)
        row["torch_tflops"] = flops / (row["torch_ms"] * 1e-3) / 1e12
    if "heron_ms" in row and times:
        row["speedup_vs_torch"] = row["torch_ms"] / row["heron_ms"]
        row["speedup_vs_torch_nchw"] = row["torch_ms_nchw"] / row["heron_ms"] if "torch_ms_nchw" in row else None


def _remove(path: str | None) -> None:
    if path and os.path.exists(path):
        os.remove(path)


def torch_ms(op: str, shape: dict, layout: str = "nchw", dtype: str = DTYPE) -> float:
    """Milliseconds per call of the same operator in PyTorch (``dtype``) on the GPU (cuBLAS / cuDNN);
    ``channels_last``: activations and weights in channels-last memory (what Heron's convolutions take)."""
    import torch
    import torch.nn.functional as F

    torch.backends.cudnn.benchmark = True
    s, dev, h = shape, "cuda", getattr(torch, dtype)

    def rnd(*dims):
        t = torch.randn(*dims, device=dev, dtype=h)
        if layout == "channels_last" and t.dim() in (4, 5):
            t = t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
        return t

    if op == "gemm":
        a, b = rnd(s["M"], s["K"]), rnd(s["K"], s["N"])
        fn = lambda: torch.matmul(a, b)  # noqa: E731
    elif op == "dense":
        a, w = rnd(s["M"], s["K"]), rnd(s["N"], s["K"])
        fn = lambda: F.linear(a, w)  # noqa: E731
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
    elif op == "conv1d" and layout == "channels_last":  # no channels-last 3-D tensors: a conv2d of height 1
        x, w = rnd(s["N"], s["C"], 1, s["W"]), rnd(s["K"], s["C"], 1, s["S"])
        fn = lambda: F.conv2d(x, w, stride=s["stride"], padding=(0, s["pad"]), dilation=s.get("dilation", 1))  # noqa: E731
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
    # Heron's re-timing protocol (RETIME): the median of 7 repeats of >= 40 ms of calls
    n = max(20, min(2000, int(RETIME["min_repeat_ms"] / max(start.elapsed_time(end), 1e-3)) + 1))
    times = []
    for _ in range(RETIME["repeat"]):
        start.record()
        for _ in range(n):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / n)
    return statistics.median(times)


def machine() -> dict:
    import torch

    from heron_core.tvm_compat import versions

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


# --- 3. report -------------------------------------------------------------------------------
def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def summarize(rows: list[dict]) -> dict:
    fig6 = [r for r in rows if r.get("group") in FIGURE6_GROUPS and "speedup_vs_torch" in r]
    vs_nchw = [r["speedup_vs_torch_nchw"] for r in fig6 if r.get("speedup_vs_torch_nchw")]
    failed = [r["case"] for r in rows if r.get("group") in FIGURE6_GROUPS and "heron_ms" not in r and "skipped" not in r]
    by_group = {}
    for g in dict.fromkeys(r["group"] for r in rows if "group" in r):
        by_group[g] = geomean([r["speedup_vs_torch"] for r in rows if r.get("group") == g and "speedup_vs_torch" in r])
    # the figure on sm_90a: each case by the faster of Heron's kernels in its rows (W_: arch sm_90a, the wgmma
    # template where it applies; the plain row: the sm_80 template), as tuning both and keeping the faster would,
    # against the faster of PyTorch's times in those rows (the same operator timed twice: noise favours no row)
    timed = {r["case"]: r for r in rows if "speedup_vs_torch" in r}
    sm90a = []
    for n, c in CASES.items():
        rs = [r for r in (timed.get(f"W_{n}"), timed.get(n)) if r] if c[0] in FIGURE6_GROUPS else []
        if rs:
            best = min(rs, key=lambda r: r["heron_ms"])
            sm90a.append((best, min(r["torch_ms"] for r in rs) / best["heron_ms"]))
    return {
        "figure6_cases_measured": len(fig6),
        "figure6_geomean_speedup": geomean([r["speedup_vs_torch"] for r in fig6]),
        "figure6_geomean_speedup_vs_torch_nchw": geomean(vs_nchw),
        "figure6_cases_without_a_valid_kernel": failed,
        "figure6_cases_faster_than_torch": sum(r["speedup_vs_torch"] >= 1 for r in fig6),
        "geomean_by_group": by_group,
        "figure6_sm90a_cases_measured": len(sm90a),
        "figure6_sm90a_geomean_speedup": geomean([x for _, x in sm90a]),
        "figure6_sm90a_wgmma_cases": sum("swizzle" in r.get("best_point", {}) for r, _ in sm90a),
        "figure6_sm90a_by_case": {r["case"].removeprefix("W_"): round(x, 3) for r, x in sm90a},
    }  # fmt: skip


def write(result: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = result["cases"]
    result["summary"] = summarize(rows)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(markdown(result))
    if any("speedup_vs_torch" in r for r in rows) and importlib.util.find_spec("matplotlib"):
        _plot(rows, out / f"{stem}.png", result["machine"]["gpu"])


def markdown(result: dict) -> str:
    info, rows, summary = result["machine"], result["cases"], result["summary"]
    lines = [
        f"# Heron `tensorcore` vs PyTorch fp16 on {info['gpu']}",
        "",
        f"{info['date']}; driver/GPU: {info['nvidia_smi']}; torch {info['torch']} (CUDA {info['torch_cuda']}, cuDNN "
        f"{info['cudnn']}); {info['nvcc']}; TVM {info['versions'].get('apache-tvm')}, tvm-ffi "
        f"{info['versions'].get('apache-tvm-ffi')}; Python {info['python']}, {info['cpu_cores']} CPU cores (parallel builds).",
        f"Points per case: {result['sampler']} (seed {result['seed']}); every kernel checked against numpy; the best re-timed "
        "(median of 7 repeats of >= 40 ms) after all builds, then PyTorch on the same GPU (CUDA events, after warm-up, "
        "cudnn.benchmark on, the same median of 7 repeats of >= 40 ms), all in this one run.",
        "fp16 inputs; Heron accumulates and stores fp16 (as the original's figure 6); PyTorch's fp16 matmul/conv accumulate "
        "in fp32. Heron's convolutions take channels-last activations and weights (NHWC / KRSC, packed before the call); "
        "PyTorch is timed in NCHW and in channels-last, and speedup = the faster PyTorch ms / Heron ms (>1: Heron faster).",
        "",
        "| case | op | shape | points | failed | Heron ms | Heron TFLOP/s | torch NCHW ms | torch NHWC ms | torch TFLOP/s "
        "| speedup | vs NCHW |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['case']} | {CASES[r['case']][1]} | | | | not run: {r['skipped']} | | | | | | |")
            continue
        shape = ",".join(f"{k}={v}" for k, v in r["shape"].items())
        lines.append(
            f"| {r['case']} | {r['op']} | {shape} | {r['points']} | {sum(r['failures'].values())} | "
            f"{_f(r.get('heron_ms'), 4)} | {_f(r.get('heron_tflops'), 1)} | {_f(r.get('torch_ms_nchw'), 4)} | "
            f"{_f(r.get('torch_ms_channels_last'), 4)} | {_f(r.get('torch_tflops'), 1)} | {_f(r.get('speedup_vs_torch'), 2)} | "
            f"{_f(r.get('speedup_vs_torch_nchw'), 2)} |"
        )
    failed = summary["figure6_cases_without_a_valid_kernel"]
    done = {r["case"] for r in rows if "speedup_vs_torch" in r}
    not_run = [n for n, c in CASES.items() if c[0] in FIGURE6_GROUPS and n not in done and n not in failed]
    lines += [
        "",
        f"Figure-6 cases measured: {summary['figure6_cases_measured']} of {sum(c[0] in FIGURE6_GROUPS for c in CASES.values())}; "
        f"geomean speedup {_f(summary['figure6_geomean_speedup'], 3)} over the faster PyTorch layout "
        f"({_f(summary['figure6_geomean_speedup_vs_torch_nchw'], 3)} over PyTorch NCHW); faster than PyTorch in "
        f"{summary['figure6_cases_faster_than_torch']}; no valid kernel: {', '.join(failed) or 'none'}; "
        f"not run: {', '.join(not_run) or 'none'}.",
        "By group: " + ", ".join(f"{g} {_f(v, 3)}" for g, v in summary["geomean_by_group"].items()) + ".",
    ]
    if summary.get("figure6_sm90a_wgmma_cases"):
        lines.append(f"Figure 6 on sm_90a (each case by Heron's faster kernel of its `W_` row, arch sm_90a with the wgmma "
                     f"template where it applies, and its sm_80 row, against the faster PyTorch time of the two rows): "
                     f"{summary['figure6_sm90a_cases_measured']} cases, {summary['figure6_sm90a_wgmma_cases']} of them "
                     f"by wgmma; geomean speedup {_f(summary['figure6_sm90a_geomean_speedup'], 3)}.")
    g4096 = next((r for r in rows if r["case"] == "GEMM4096" and "heron_tflops" in r), None)
    if g4096:
        lines.append(f"GEMM 4096^3: {g4096['heron_tflops']:.0f} TFLOP/s, {g4096['speedup_vs_torch']:.2f}x torch.matmul; the "
                     f"hand-written WMMA reference reached {HANDWRITTEN_WMMA_TFLOPS} TFLOP/s (H100).")  # fmt: skip
    if "tuning_s" in result:
        lines.append(f"Run time: {result['tuning_s']:.0f} s tuning, {result.get('total_s', 0):.0f} s in all.")
    lines += ["", *NOTES, *(f"- {n}" for n in result.get("notes", []))]
    return "\n".join(lines) + "\n"


NOTES = [
    "Notes:",
    "- Large GEMMs: cuBLAS runs Hopper's wgmma (warpgroup MMA fed by TMA), which TVM 0.27's schedule language does not "
    "reach; Heron's sm_80 template (the rows without `W_`) uses WMMA fragments or mma.sync m16n8k16 with ldmatrix (the "
    "`mma` knob), the warp-level Tensor Core instructions of sm_80; the `W_` rows (arch sm_90a) run Heron's own wgmma + "
    "TMA template (wgmma.py: gemm, dense, bmm, and the convolutions as implicit GEMMs).",
    "- 'Heron ms' is the re-timed best (7 repeats of >= 40 ms, after tuning); for the largest GEMMs it is up to ~13% "
    "slower than the same kernel's short tuning measurement (clocks were not logged; sustained load is the likely "
    "cause); the tables use the re-timed value.",
    "- The tuning log of every point of the runs named above is in the `_measurements.json.gz` file next to this one.",
]


def report(result: dict, history: list[str], out: Path, stem: str, notes: list[str], run_name: str | None = None) -> None:
    """Write a run's table, chart and JSON (best points only) and, compressed, every measurement
    of it and of the earlier runs that guided it (their JSONs, or an earlier `_measurements.json.gz`
    archive whose runs are kept as they are)."""
    archive = {}
    for h in history:
        if h.endswith(".gz"):
            archive.update(json.loads(gzip.decompress(Path(h).read_bytes())))
        else:
            cases = json.loads(Path(h).read_text())["cases"]
            archive[os.path.basename(h)] = {c["case"]: c.get("measurements", []) for c in cases}
    archive[run_name or f"{stem}.json"] = {c["case"]: c.get("measurements", []) for c in result["cases"]}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}_measurements.json.gz").write_bytes(gzip.compress(json.dumps(archive).encode(), 9))
    slim = {**result, "notes": notes, "cases": [{k: v for k, v in c.items() if k != "measurements"} for c in result["cases"]]}
    write(slim, out, stem)


def _f(x, digits: int) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _plot(rows: list[dict], path: Path, gpu: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = [r for r in rows if "speedup_vs_torch" in r]
    fig = Figure(figsize=(max(6, 0.3 * len(shown)), 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = ["tab:green" if r["speedup_vs_torch"] >= 1 else "tab:blue" for r in shown]
    ax.bar(range(len(shown)), [r["speedup_vs_torch"] for r in shown], color=colors)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(shown)), [r["case"] for r in shown], rotation=90, fontsize=7)
    ax.set_ylabel("speedup vs PyTorch fp16 (log)")
    ax.set_title(f"Heron tensorcore vs PyTorch (faster layout), {gpu}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="choose the points of every case (CP-SAT; no GPU needed)")
    p.add_argument("--groups", default="all", help="case groups (comma-separated), or 'all'")
    p.add_argument("--cases", default="", help="case names (overrides --groups)")
    p.add_argument("--points", default="10", help="points per case: N, or GROUP=N,...,*=N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guide", nargs="*", default=[], help="earlier runs' JSONs (or a _measurements.json.gz): train on them")
    p.add_argument("--candidates", type=int, default=300, help="fresh samples per case the model ranks")
    p.add_argument("--explore", type=int, default=0, help="guided: per 10 points, this many from the rest of the ranking")
    p.add_argument("--fix", default="", help="KNOB=V,...: fresh samples agree with these (e.g. mma=1)")
    p.add_argument("--include", default="", help="a JSON file of points measured first in every case whose space holds them")
    p.add_argument("--vary", default="", help="KNOB: the first --vary-top points of each case with its other values too")
    p.add_argument("--vary-top", type=int, default=3)
    p.add_argument("--append", nargs="*", default=[], help="earlier plans whose cases run after these (one run)")
    p.add_argument("--out", required=True, help="the plan (JSON; gzip-compressed if it ends in .gz)")
    r = sub.add_parser("run", help="measure a plan and PyTorch (on the GPU machine)")
    r.add_argument("plan")
    r.add_argument("--out", default=os.environ.get("OUT") or "bench/results/gpu_tensorcore")
    r.add_argument("--stem", default="gpu_tensorcore")
    r.add_argument("--parallel", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="build workers")
    r.add_argument("--deadline", type=float, default=1e9, help="seconds of tuning before the remaining cases are skipped")
    m = sub.add_parser("report", help="a run's JSON -> results files (best points; measurements compressed)")
    m.add_argument("result")
    m.add_argument("--history", nargs="*", default=[], help="the earlier runs' JSONs (or a _measurements.json.gz) that guided it")
    m.add_argument("--run-name", default=None, help="the run's name in the archive (default: STEM.json)")
    m.add_argument("--note", action="append", default=[], help="a line for the notes (repeatable)")
    m.add_argument("--out", default="bench/results/gpu_tensorcore")
    m.add_argument("--stem", default="gpu_tensorcore")
    args = ap.parse_args()
    if args.cmd == "plan":
        groups = set(args.groups.split(","))
        names = args.cases.split(",") if args.cases else [n for n, c in CASES.items() if "all" in groups or c[0] in groups]
        points = dict(kv.split("=") for kv in args.points.split(",")) if "=" in args.points else {"*": args.points}
        fixed = {k: int(v) for k, v in (kv.split("=") for kv in args.fix.split(",") if kv)}
        include = json.loads(Path(args.include).read_text()) if args.include else None
        plan = make_plan(names, {k: int(v) for k, v in points.items()}, args.seed, args.guide, args.candidates, args.explore,
                         fixed, include, args.vary, args.vary_top)  # fmt: skip
        for other in args.append:
            append_plan(plan, json.loads(Path(other).read_text()))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(plan).encode()
        Path(args.out).write_bytes(gzip.compress(text) if args.out.endswith(".gz") else text)
    elif args.cmd == "run":
        text = Path(args.plan).read_bytes()
        run_plan(json.loads(gzip.decompress(text) if args.plan.endswith(".gz") else text), Path(args.out), args.stem,
                 args.parallel, args.deadline)  # fmt: skip
    else:
        report(json.loads(Path(args.result).read_text()), args.history, Path(args.out), args.stem, args.note, args.run_name)


if __name__ == "__main__":
    main()
