"""Whole models with Heron's kernels (issue 20), random weights, one thread each side.

    taskset -c 0 python bench/models/end_to_end.py --work /tmp/heron-models --trials 4 --stage prepare
    flock /tmp/heron-bench.lock taskset -c 1 python bench/models/end_to_end.py --work /tmp/heron-models --trials 4 --stage time

Cases (``--only``): ``resnet50`` (plain-torch ResNet-50 -> ONNX -> int8 QDQ by ONNX Runtime's
quantize_static with random calibration data; ``heron build`` vs ONNX Runtime's int8 run of the
same file, and against TVM Relax + MetaSchedule on the same file at the same total trials),
``bert_onnx`` (BERT-base int8 QDQ, sequence 128, vs ONNX Runtime) and ``bert_torch`` (transformers
BERT-base, sequence 128: Heron's dynamic int8 linears via ``heron_core.torch.swap_modules`` vs
``torch.ao.quantization.quantize_dynamic``).
``--stage prepare`` makes the model files and tunes (Heron; MetaSchedule for ResNet-50; no timing: it
may run beside other work), ``time`` (under the benchmark lock) times both sides; the default does both.
Resumable: every stage (model files, tuning records, built model) is kept in ``--work`` and
skipped when present; ``heron tune`` itself measures only what is missing.
Writes bench/results/models/models_<cpu>.json and .md. The MetaSchedule baseline needs ``pip install -e ".[bench]"``
(xgboost, psutil, cloudpickle: the TVM wheel does not declare them).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TVM_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from common import machine  # noqa: E402
from network.network import resnet50  # noqa: E402  (the network benchmark's ResNet-50)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "models"
TARGET = {"num_cores": 1}


def medians_ms(fns: list, runs: int, warmup: int = 2) -> list[float]:
    """Median milliseconds of each callable, their runs interleaved (a busy neighbour slows all alike)."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, ts in zip(fns, times):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) * 1e3 for ts in times]


def tune(configs: list[dict], work: Path, db: Path) -> None:
    for i, cfg in enumerate(configs):
        path = work / f"tune_{db.stem}_{i}.json"
        path.write_text(json.dumps(cfg))
        subprocess.run([sys.executable, "-m", "heron_core.cli", "tune", "-c", str(path), "--db", str(db), "--quiet"], check=True)


# --- ResNet-50 --------------------------------------------------------------------------------
def prepare_resnet(work: Path) -> Path:
    import torch
    from onnx_models import quantize

    fp32, qdq = work / "resnet50.onnx", work / "resnet50_qdq.onnx"
    if not fp32.exists():
        torch.manual_seed(0)
        model = resnet50(torch).eval()
        for m in model.modules():  # random but sane BatchNorm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
                m.weight.data.uniform_(0.5, 1.0)
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(fp32), opset_version=17, dynamo=False, input_names=["x"])
    if not qdq.exists():
        quantize(fp32, qdq, samples=4)
    return qdq


def run_onnx(
    case: str, work: Path, qdq: Path, name: str, feeds: dict, trials: int, runs: int, timing: bool, metaschedule: bool = False
) -> dict | None:
    """Tune the QDQ model's Heron workloads (and, with ``metaschedule``, the TVM-only model with MetaSchedule at
    the same total trials); when timing, build it and time it against ONNX Runtime (and MetaSchedule), one thread each."""
    import onnxruntime as ort

    from heron_core.build import build_model, compare_with_onnxruntime, find_products, load_model, load_onnx, tune_configs
    from heron_core.records import RecordDB

    products = find_products(load_onnx(qdq))
    db = work / f"{name}.db"
    configs = tune_configs(products, trials, TARGET)
    tune(configs, work, db)
    total_trials = trials * sum(len(c["cases"]) for c in configs)
    ms_dir = work / f"{name}_metaschedule"
    if metaschedule:
        tune_metaschedule(qdq, ms_dir, total_trials)
    if not timing:
        return None
    out = work / f"{name}_built"
    records = RecordDB(db)
    try:
        built = build_model(qdq, records, out, target_params=TARGET, log=print)
    finally:
        records.close()
    model = load_model(out)
    check = compare_with_onnxruntime(qdq, model, threads=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(qdq), opts, providers=["CPUExecutionProvider"])
    fns = [lambda: sess.run(None, feeds), lambda: model(feeds)]
    ms_run = metaschedule_runner(qdq, ms_dir, feeds) if metaschedule else None
    if ms_run is not None:
        fns.append(ms_run)
    ort_ms, heron_ms, *ms_ms = medians_ms(fns, runs)
    kernels_ms, rest_ms, top_rest = split_time(model, feeds)
    result = {
        "case": case,
        "products": len(products),
        "on_heron": len(built.heron),
        "workloads": len({p.workload_key for p in built.heron + built.untuned}),
        "trials_per_workload": trials,
        "total_trials": total_trials,
        "runs": runs,
        "heron_ms": heron_ms,
        "ort_ms": ort_ms,
        "speedup_vs_ort": ort_ms / heron_ms,
        "heron_kernels_ms": kernels_ms,
        "rest_ms": rest_ms,
        "rest_top": top_rest,
        "check_vs_ort": check,
    }
    if ms_ms:
        expected = sess.run(None, feeds)[0].astype(np.float64)  # one output (the logits)
        ms_check = float(np.linalg.norm(ms_run().numpy() - expected) / np.linalg.norm(expected))
        result |= {"metaschedule_ms": ms_ms[0], "speedup_vs_metaschedule": ms_ms[0] / heron_ms}
        result["metaschedule_rel_l2_vs_ort"] = ms_check
    return result


def split_time(model, feeds: dict, repeats: int = 5) -> tuple[float, float, dict[str, float]]:
    """Median ms in Heron's kernels and in the rest (VM-instrumented runs), and the rest's five largest functions."""
    profiles = [model.profile(feeds) for _ in range(repeats)]
    kernels = [sum(v for k, v in p.items() if k.startswith("heron.")) * 1e3 for p in profiles]
    rest = [sum(v for k, v in p.items() if not k.startswith("heron.")) * 1e3 for p in profiles]
    last = {k: v * 1e3 for k, v in profiles[-1].items() if not k.startswith("heron.")}
    top = dict(sorted(last.items(), key=lambda kv: -kv[1])[:5])
    return statistics.median(kernels), statistics.median(rest), {k[:60]: round(v, 3) for k, v in top.items()}


def _ms_target():
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    return {"kind": "llvm", "mcpu": llvm_host_cpu(), "num-cores": 1}


def tune_metaschedule(qdq: Path, work_dir: Path, total_trials: int) -> None:
    """TVM Relax + MetaSchedule on the same QDQ file (TVM's own lowering), ``total_trials`` over all its tasks
    (gradient task scheduler; each round gives a task ceil(total / tasks) trials). Kept in ``work_dir``."""
    if (work_dir / "database_tuning_record.json").exists():
        return
    import onnx
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import meta_schedule as ms

    target = tvm.target.Target(_ms_target())
    with target:  # the fused PrimFuncs compile_relax will look up (it runs the same passes)
        fuse = tvm.transform.Sequential(cpu.library_dispatch_passes(target) + cpu.legalize_passes(target))
        mod = fuse(from_onnx(onnx.load(str(qdq))))
    tasks = ms.relax_integration.extract_tasks(mod, target)
    per_iter = max(1, -(-total_trials // len(tasks)))
    print(f"MetaSchedule: {len(tasks)} tasks, {total_trials} trials, {per_iter} per round", flush=True)
    t = time.time()
    # Builds in this process: LocalBuilder starts a fresh worker pool for every batch, and a fresh process
    # importing TVM took 161 s on this loaded machine (every build timed out). The evolutionary search is
    # shrunk to match 1-2 trials a task (its defaults sample 512 and evolve 4 times per round: ~35 s a task here).
    strategy = ms.search_strategy.EvolutionarySearch(population_size=64, init_min_unmeasured=16, genetic_num_iters=1)
    runner = ms.runner.LocalRunner(timeout_sec=300)
    ms.relax_integration.tune_relax(
        mod, {}, target, str(work_dir), max_trials_global=total_trials, num_trials_per_iter=per_iter, seed=0,
        builder=_in_process_builder(), runner=runner, strategy=strategy,
    )
    (work_dir / "tuning_seconds.txt").write_text(f"{time.time() - t:.0f}\n")


def _in_process_builder():
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    results.append(ms.builder.BuilderResult(default_export(default_build(item.mod, item.target, None)), None))
                except Exception as exc:  # noqa: BLE001 (a candidate that does not build is a failed trial)
                    results.append(ms.builder.BuilderResult(None, f"{type(exc).__name__}: {exc}"))
            return results

    return InProcessBuilder()


def metaschedule_runner(qdq: Path, work_dir: Path, feeds: dict):
    """A callable running the MetaSchedule-compiled model (None if it was not tuned)."""
    if not (work_dir / "database_tuning_record.json").exists():
        return None
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import meta_schedule as ms

    mod = from_onnx(onnx.load(str(qdq)))
    database = ms.database.JSONDatabase(work_dir=str(work_dir))
    vm = relax.VirtualMachine(ms.relax_integration.compile_relax(database, mod, tvm.target.Target(_ms_target()), None), tvm.cpu())
    args = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in feeds.values()]
    return lambda: vm["main"](*args)


def run_resnet(work: Path, trials: int, runs: int, timing: bool) -> dict | None:
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    qdq = prepare_resnet(work)
    return run_onnx("ResNet-50 int8 QDQ (1x3x224x224)", work, qdq, "resnet50", feeds, trials, runs, timing, metaschedule=True)


# --- BERT-base, PyTorch -------------------------------------------------------------------------
BERT_DENSE = [{"M": 128, "K": 768, "N": 768}, {"M": 128, "K": 768, "N": 3072}, {"M": 128, "K": 3072, "N": 768}]


def torch_targets() -> list[str]:
    """dlboost (VNNI) always; amx where the CPU has AMX (quantize_dynamic's fbgemm uses VNNI either way)."""
    return ["dlboost", "amx"] if machine()["amx"] else ["dlboost"]


def prepare_bert_torch(work: Path, trials: int) -> dict[str, Path]:
    """Tune BERT's three linear shapes on each target and export one library per target."""
    db, libs = work / "bert.db", {}
    for target in torch_targets():
        cases = [{"op": "dense", "shape": s} for s in BERT_DENSE]
        config = {"target": {"name": target, **TARGET}, "cases": cases, "trials": trials}
        # also dequantizing in the kernel's epilogue (float32 out), which the swapped linears prefer
        tune([config, {**config, "out_dtype": "float32"}], work, db)
        libs[target] = work / f"bert_lib_{target}"
        if not (libs[target] / "manifest.json").exists():
            key = f"{target}/{machine()['llvm_cpu']}/{TARGET['num_cores']}c"  # this CPU's records only
            cmd = ["export", str(libs[target]), "--op", "dense", "--target", key, "--db", str(db)]
            subprocess.run([sys.executable, "-m", "heron_core.cli", *cmd], check=True)
    return libs


def time_bert_layers(libs: dict, runs: int) -> list[dict]:
    """Each linear shape alone: quantize_dynamic's layer, Heron's whole layer (quantize, kernel,
    dequantize) and Heron's kernel alone, interleaved; GOPS against the VNNI / AMX peaks measured here."""
    import torch
    from cpu_amx.amx_peak import measure_peak as amx_peak
    from cpu_dlboost.peak import measure_peak as vnni_peak

    from heron_core import load_library
    from heron_core.torch import Int8Linear, _quantize_activation

    peaks = {"dlboost": vnni_peak(1), **({"amx": amx_peak(1)} if "amx" in libs else {})}
    rows = []
    for s in BERT_DENSE:
        m, k, n = s["M"], s["K"], s["N"]
        x, linear = torch.randn(m, k), torch.nn.Linear(k, n)
        engines = ["x86", "onednn"] if "amx" in libs else ["x86"]
        fns = [lambda d=quantize_dynamic(torch.nn.Sequential(linear), e): d(x) for e in engines]
        names = ["quantize_dynamic", "quantize_dynamic_onednn"][: len(engines)]
        for target, path in libs.items():
            lib = load_library(path)
            key = f"dense[M={m},K={k},N={n}]:int8->int32"  # the kernel alone: the s32 one
            dequantizing = key.replace("int32", "float32")
            layer = Int8Linear(linear, lib, dequantizing if dequantizing in lib.kernels else key, m)
            q, out = _quantize_activation(x)[0], torch.empty(m, n, dtype=torch.int32)
            fn = lib[key].function
            fns += [lambda layer=layer: layer(x), lambda fn=fn, q=q, w=layer.weight_packed, out=out: fn(q, w, out)]
            names += [f"heron_{target}_layer", f"heron_{target}_kernel"]
        with torch.no_grad():
            ms = dict(zip(names, medians_ms(fns, runs * 5)))
        gops = {name: 2 * m * k * n / t / 1e6 for name, t in ms.items()}
        row = {"shape": f"M={m} K={k} N={n}", **{f"{a}_ms": t for a, t in ms.items()}}
        row["quantize_dynamic_pct_vnni_peak"] = 100 * gops["quantize_dynamic"] / peaks["dlboost"]
        for target in libs:
            row[f"heron_{target}_kernel_pct_peak"] = 100 * gops[f"heron_{target}_kernel"] / peaks[target]
            row[f"heron_{target}_layer_speedup"] = ms["quantize_dynamic"] / ms[f"heron_{target}_layer"]
        if "amx" in libs:
            row["heron_amx_layer_speedup_vs_onednn"] = ms["quantize_dynamic_onednn"] / ms["heron_amx_layer"]
        rows.append(row)
    return [{"peak_gops": peaks}, *rows]


def quantize_dynamic(model, engine: str):
    """A copy of ``model`` with dynamic int8 linears packed for ``engine`` (each runs on the engine it was packed for)."""
    import torch

    default, torch.backends.quantized.engine = torch.backends.quantized.engine, engine
    try:
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    finally:
        torch.backends.quantized.engine = default


def op_share_ms(model, ids, op: str) -> tuple[float, float]:
    """(total, time in ``op``) of one profiled run, ms."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        model(ids)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e3
    return total, sum(e.cpu_time_total for e in events if e.key == op) / 1e3


def run_bert_torch(work: Path, trials: int, runs: int, timing: bool) -> dict | None:
    """BERT-base with Heron's linears (each target, eager and torch.compile'd) against quantize_dynamic (eager),
    one thread each, all timed in alternation in this process. Writes torch_bert_<cpu>_1c.{json,md}."""
    import torch
    from transformers import BertConfig, BertModel

    from heron_core.torch import swap_modules

    torch.set_num_threads(1)
    libs = prepare_bert_torch(work, trials)
    if not timing:
        return None
    torch.manual_seed(0)
    fp32 = BertModel(BertConfig(), add_pooling_layer=False).eval()
    ids = torch.randint(0, 30522, (1, 128))
    models = {}
    result = {"case": "BERT-base (PyTorch, seq 128): dynamic int8 linears", "trials_per_workload": trials, "runs": runs}
    with torch.no_grad():
        ref = fp32(ids).last_hidden_state
        models["quantize_dynamic"] = quantize_dynamic(fp32, "x86")  # PyTorch's default engine: fbgemm (VNNI) here
        if "amx" in libs:  # oneDNN's dynamic linear, which uses AMX: the same hardware as Heron's amx kernels
            models["quantize_dynamic_onednn"] = quantize_dynamic(fp32, "onednn")
        for target, lib in libs.items():
            heron = copy.deepcopy(fp32)
            result["linears_swapped"] = len(swap_modules(heron, lib, (ids,)))
            models[f"heron_{target}"] = heron
            models[f"heron_{target}_compiled"] = torch.compile(heron)
        rel = {}
        for name, model in models.items():  # also the compilations, before any timing
            out = model(ids).last_hidden_state
            rel[name] = float((out - ref).norm() / ref.norm())
        ms = dict(zip(models, medians_ms([lambda m=m: m(ids) for m in models.values()], runs)))
        share = {
            name: op_share_ms(m, ids, "quantized::linear_dynamic" if name.startswith("quantize") else "heron::dynamic_int8")
            for name, m in models.items()
            if not name.endswith("compiled")
        }
    base = ms["quantize_dynamic"]
    result["models"] = {
        name: {
            "ms": t,
            "speedup_vs_quantize_dynamic": base / t,
            "rel_error_vs_fp32": rel[name],
            **({"profiled_ms": share[name][0], "linears_ms": share[name][1]} if name in share else {}),
        }
        for name, t in ms.items()
    }
    result["layers"] = time_bert_layers(libs, runs)
    write_torch(result)
    summary = {k: result[k] for k in ("case", "trials_per_workload", "linears_swapped")}
    summary |= {f"{name}_ms": r["ms"] for name, r in result["models"].items()}
    speedups = {f"speedup_{name}": r["speedup_vs_quantize_dynamic"] for name, r in result["models"].items() if "heron" in name}
    return summary | speedups


def write_torch(result: dict) -> Path:
    info = {**machine(), "affinity": sorted(os.sched_getaffinity(0)), "load_average": os.getloadavg()}
    stem = RESULTS / f"torch_bert_{info['llvm_cpu']}_1c"
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "result": result}, indent=1))
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = [
        "# BERT-base in PyTorch with Heron's dynamic int8 linears (bench/models/end_to_end.py --only bert_torch)",
        "",
        f"{info['date']}, {info['cpu']} (LLVM {info['llvm_cpu']}), versions {info['versions']}.",
        f"One thread each side (torch.set_num_threads(1), kernels num_cores=1), the process pinned to core(s) "
        f"{info['affinity']} of {os.cpu_count()}; load average {info['load_average'][0]:.1f} at the end (other sessions' work).",
        f"Medians of {result['runs']} rounds, every model once per round (alternating); {result['trials_per_workload']} "
        f"tuning trials per shape; {result['linears_swapped']} nn.Linear swapped.",
        "",
        "| model | ms | speedup vs quantize_dynamic | rel. error vs fp32 | profiled ms | of which linears ms |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["models"].items():
        cells = [r["ms"], r["speedup_vs_quantize_dynamic"], r["rel_error_vs_fp32"], r.get("profiled_ms", "-")]
        cells.append(r.get("linears_ms", "-"))
        lines.append(f"| {name} | " + " | ".join(fmt(c) for c in cells) + " |")
    peaks, *layers = result["layers"]
    peak_text = ", ".join(f"{k} {v:.0f}" for k, v in peaks["peak_gops"].items())
    rounds = 5 * result["runs"]
    lines += ["", f"Single layers, medians of {rounds} alternating rounds (int8 peak GOPS measured here: {peak_text}):", ""]
    lines += ["| " + " | ".join(layers[0]) + " |", "|" + "---|" * len(layers[0])]
    lines += ["| " + " | ".join(fmt(v) for v in row.values()) + " |" for row in layers]
    path = stem.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path


# --- BERT-base, ONNX int8 -----------------------------------------------------------------------
def prepare_bert_onnx(work: Path) -> Path:
    import torch
    from onnx_models import quantize
    from transformers import BertConfig, BertModel

    fp32, qdq = work / "bert.onnx", work / "bert_qdq.onnx"
    if not fp32.exists():
        torch.manual_seed(0)
        bert = BertModel(BertConfig(), add_pooling_layer=False).eval()

        class Hidden(torch.nn.Module):  # input_ids only, by keyword (BertModel's positional arguments changed)
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, ids):
                return self.bert(input_ids=ids).last_hidden_state

        ids = torch.randint(0, 30522, (1, 128))
        with torch.no_grad():
            torch.onnx.export(Hidden().eval(), (ids,), str(fp32), opset_version=17, dynamo=False, input_names=["input_ids"])
    if not qdq.exists():
        quantize(fp32, qdq, samples=4, int_inputs=True)
    return qdq


def run_bert_onnx(work: Path, trials: int, runs: int, timing: bool) -> dict | None:
    feeds = {"input_ids": np.random.default_rng(0).integers(0, 30522, (1, 128))}
    return run_onnx("BERT-base int8 QDQ (ONNX, seq 128)", work, prepare_bert_onnx(work), "bert_onnx", feeds, trials, runs, timing)


CASES = {"resnet50": run_resnet, "bert_torch": run_bert_torch, "bert_onnx": run_bert_onnx}


def write(results: dict, info: dict) -> Path:
    stem = RESULTS / f"models_{info['llvm_cpu']}_1c"
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    lines = [
        "# Whole models with Heron's kernels (bench/models/end_to_end.py)",
        "",
        f"{info['date']}, {info['cpu']} (LLVM {info['llvm_cpu']}), versions {info['versions']}.",
        f"One thread on each side, pinned to one core: {info['pinning']}. Medians of interleaved runs (`runs` per case).",
        "Heron kernels' time: ONNX cases, measured in the same run by instrumenting the VM (`Model.profile`, median of 5 runs),"
        " rest = the other functions; PyTorch case, the sum of each swapped layer's kernel latency as tuned,"
        " rest = total - that.",
        "",
    ]
    for name, r in results.items():
        lines += [f"## {r['case']}", "", "| quantity | value |", "|---|---|"]
        lines += [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in r.items() if k != "case"]
        lines.append("")
    path = stem.with_suffix(".md")
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/heron-models"))
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--only", default=",".join(CASES))
    ap.add_argument("--stage", choices=("prepare", "time", "all"), default="all")
    ap.add_argument("--pinning", default="core 1 (`taskset -c 1`) under the benchmark lock, other work on core 0")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    import importlib.metadata as md

    extra = {d: md.version(d) for d in ("onnxruntime", "onnx", "torch", "transformers")}
    info = {**machine(), "pinning": args.pinning, "runs": args.runs}
    info["versions"] = {**info["versions"], **extra}
    previous = RESULTS / f"models_{info['llvm_cpu']}_1c.json"
    results = json.loads(previous.read_text())["results"] if previous.exists() else {}
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        result = CASES[name](args.work, args.trials, args.runs, args.stage != "prepare")
        if result is None:
            continue
        results[name] = result
        print(json.dumps(results[name], indent=1), flush=True)
        print(write(results, info))


if __name__ == "__main__":
    main()
