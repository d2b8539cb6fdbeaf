"""The VNNI peak: register-only vpdpbusd zmm chains, built with TVM; % of peak in reports.

Each thread runs ``chains`` independent accumulator chains (enough to cover vpdpbusd's
latency on two ports), so the loop is bound by vpdpbusd throughput alone. Int8 GOPS (one
vpdpbusd zmm = 16 lanes x 4 multiply-adds = 128 ops).
"""

from __future__ import annotations

import numpy as np

OPS_PER_VPDPBUSD = 16 * 4 * 2


def peak_kernel(threads: int, iters: int, chains: int = 16):
    from tvm.script import tirx as T

    @T.prim_func
    def peak(A: T.Buffer((64,), "uint8"), B: T.Buffer((64,), "int8"), C: T.Buffer((threads, chains, 16), "int32")):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            acc = T.decl_buffer((chains, 16), "int32", scope="local")
            for c in T.unroll(chains):
                acc[c, T.ramp(0, 1, 16)] = T.broadcast(T.int32(0), 16)
            for _ in range(iters):
                for c in T.unroll(chains):
                    acc[c, T.ramp(0, 1, 16)] = T.call_llvm_pure_intrin(
                        T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                        acc.vload([c, 0], "int32x16"),
                        A.vload([0], "uint8x64"),
                        B.vload([0], "int8x64"),
                        dtype="int32x16",
                    )
            for c in T.unroll(chains):
                C[t, c, T.ramp(0, 1, 16)] = acc.vload([c, 0], "int32x16")

    return peak, threads * iters * chains * OPS_PER_VPDPBUSD


def measure_peak(threads: int, mcpu: str | None = None, iters: int = 200_000, repeat: int = 7) -> float:
    """Int8 GOPS (best of ``repeat``) of the vpdpbusd loop on ``threads`` threads (TVM_NUM_THREADS must allow them)."""
    import tvm

    from heron_core import tvm_compat
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    func, ops = peak_kernel(threads, iters)
    target = {"kind": "llvm", "mcpu": mcpu or llvm_host_cpu(), "num-cores": threads}
    module = tvm_compat.build(tvm.IRModule({"main": func}), target).jit()
    dev = tvm_compat.device("cpu")
    args = tvm_compat.to_device([np.ones(64, "uint8"), np.ones(64, "int8"), np.zeros((threads, 16, 16), "int32")], dev)
    costs = tvm_compat.time_kernel(module, dev, args, number=1, repeat=repeat, min_repeat_ms=100, cache_flush=False)
    expected = iters * 4  # every lane adds 4 products of 1*1 per iteration
    assert (args[2].numpy() == expected).all(), "peak kernel computed a wrong sum"
    return ops / min(costs) / 1e9  # a ceiling: the best repeat
