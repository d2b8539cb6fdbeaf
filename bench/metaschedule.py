"""TVM MetaSchedule (shipped in the same TVM wheel) on a Heron workload, as the outside
reference of the search benchmark. Runs in its own process (it imports every backend's
tensor intrinsics, ~20 s, and starts its own worker pools).

    python bench/metaschedule.py --op gemm --shape M=256,K=256,N=256 --trials 64 --cores 2

Prints one JSON line: best latency (re-timed), trials, tuning seconds, correctness, whether
vpdpbusd appears in the chosen kernel. Needs xgboost, psutil and cloudpickle (pip install
".[bench]"), which the apache-tvm wheel does not declare.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--op", default="gemm")
    ap.add_argument("--shape", required=True)
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--mcpu", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.cores)

    import numpy as np
    import tvm
    from tvm.s_tir import meta_schedule as ms

    from heron_core import tvm_compat
    from heron_core.registry import registry
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    op_cls = registry().get("operator", args.op).factory
    shape = op_cls.Shape.model_validate({k: int(v) for k, v in (p.split("=") for p in args.shape.split(","))})
    op = op_cls(shape, "int8", "int32")
    from tvm import te

    from heron_core.operator import padded

    # The same compute Heron tunes: padded (and zero-inserted) operands, constants inside the kernel.
    placeholders = {t.name: te.placeholder(t.shape, t.dtype, name=t.name) for t in op.inputs}
    readers = {t.name: padded(lambda *i, ph=placeholders[t.name]: ph[i], t) for t in op.inputs}
    readers |= {t.name: padded(lambda *i, name=t.name: op.constant(name, *i), t) for t in op.constants}
    out = op.compute(readers)
    mod = tvm.IRModule({"main": te.create_prim_func([*placeholders.values(), out])})
    target = tvm.target.Target({"kind": "llvm", "mcpu": args.mcpu or llvm_host_cpu(), "num-cores": args.cores})

    t0 = time.time()
    with tempfile.TemporaryDirectory() as work:
        db = ms.tune_tir(mod, target, work, max_trials_global=args.trials, num_trials_per_iter=min(64, args.trials),
                         seed=args.seed, num_tuning_cores=args.cores)
        sch = ms.tir_integration.compile_tir(db, mod, target)
    tuning_s = time.time() - t0
    if sch is None:
        print(json.dumps({"tool": "metaschedule", "ok": False, "tuning_s": tuning_s, "error": "no valid schedule"}))
        return
    exe = tvm_compat.build(sch.mod, dict(target.export()))
    inputs = op.random_inputs(seed=0)
    dev = tvm_compat.device("cpu")
    args_ = tvm_compat.to_device([inputs[t.name] for t in op.inputs] + [np.zeros(op.output.shape, op.output.dtype)], dev)
    module = exe.jit()
    module["main"](*args_)
    correct = bool(np.array_equal(args_[-1].numpy(), op.reference(inputs)))
    costs = tvm_compat.time_kernel(module, dev, args_, number=10, repeat=15, min_repeat_ms=100, cache_flush=False)
    print(json.dumps({
        "tool": "metaschedule", "ok": True, "latency_s": statistics.median(costs), "trials": args.trials,
        "tuning_s": tuning_s, "correct": correct, "vpdpbusd": "vpdpbusd" in tvm_compat.assembly(exe),
    }))


if __name__ == "__main__":
    main()
