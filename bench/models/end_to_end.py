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


def run_bert_torch(work: Path, trials: int, runs: int, timing: bool) -> dict | None:
    import torch
    from transformers import BertConfig, BertModel

    from heron_core import load_library
    from heron_core.torch import swap_modules

    torch.set_num_threads(1)
    db, lib = work / "bert.db", work / "bert_lib"
    cfg = {"target": {"name": "dlboost", **TARGET}, "cases": [{"op": "dense", "shape": s} for s in BERT_DENSE], "trials": trials}
    tune([cfg], work, db)
    if not (lib / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "heron_core.cli", "export", str(lib), "--op", "dense", "--db", str(db)], check=True)
    if not timing:
        return None
    torch.manual_seed(0)
    fp32 = BertModel(BertConfig(), add_pooling_layer=False).eval()
    ids = torch.randint(0, 30522, (1, 128))
    with torch.no_grad():
        ref = fp32(ids).last_hidden_state
        dyn = torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)
        heron = copy.deepcopy(fp32)
        library = load_library(lib)
        swapped = swap_modules(heron, library, (ids,))
        out_dyn, out_heron = dyn(ids).last_hidden_state, heron(ids).last_hidden_state
        compiled = torch.compile(heron)
        compiled(ids)
        torch_ms, heron_ms, compiled_ms = medians_ms([lambda: dyn(ids), lambda: heron(ids), lambda: compiled(ids)], runs)
    latency = {e["workload_key"]: e["latency_s"] for e in library.manifest["kernels"]}
    kernel_ms = sum(latency[m.name.split("::")[-1]] for m in heron.modules() if hasattr(m, "weight_packed")) * 1e3
    rel = lambda a: float((a - ref).norm() / ref.norm())  # noqa: E731
    return {
        "case": "BERT-base (PyTorch, seq 128): dynamic int8 linears",
        "linears_swapped": len(swapped),
        "trials_per_workload": trials,
        "heron_ms": heron_ms,
        "heron_compiled_ms": compiled_ms,
        "quantize_dynamic_ms": torch_ms,
        "speedup_vs_quantize_dynamic": torch_ms / heron_ms,
        "heron_kernels_ms": kernel_ms,
        "rest_ms": heron_ms - kernel_ms,
        "rel_error_vs_fp32": {"heron": rel(out_heron), "quantize_dynamic": rel(out_dyn)},
    }


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
