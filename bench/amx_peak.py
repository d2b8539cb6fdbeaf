"""AMX peak microbenchmark: register-only tdpbusd (int8) / tdpbf16ps (bf16) loops, built with TVM.

Each thread loads the tile configuration, fills 2 A and 2 B tiles once and runs ``iters`` rounds
of 4 independent tile products into 4 accumulators (2x2, as the tuned kernels do), so the loop is
bound by the tile unit's throughput alone. One tdpbusd = 16 x 16 x 64 multiply-adds = 32768 ops
(tdpbf16ps: 16 x 16 x 32 = 16384 flops). Needs a CPU with AMX.

    python bench/amx_peak.py --threads 16
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

OPS = {"int8": 16 * 16 * 64 * 2, "bfloat16": 16 * 16 * 32 * 2}


def peak_kernel(threads: int, iters: int, kind: str = "int8"):
    from tvm.script import tirx as T

    from heron_cpu_dlboost.amx_intrin import TileShape, config_words

    w = config_words(TileShape(kind, rows=16, mt=2, nt=2, kc=1, tk=16))
    a_dt, b_dt, c_dt, dot = ("uint8", "int8", "int32", "llvm.x86.tdpbusd") if kind == "int8" else (
        "bfloat16", "bfloat16", "float32", "llvm.x86.tdpbf16ps")  # fmt: skip
    cols = 64 if kind == "int8" else 32

    @T.prim_func
    def peak(A: T.Buffer((16, cols), a_dt), B: T.Buffer((16, cols), b_dt), C: T.Buffer((threads, 4, 16, 16), c_dt)):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            cfg_buf = T.decl_buffer((8,), "uint64", scope="local")
            for i in T.unroll(8):
                cfg_buf[i] = T.uint64(0)
            cfg_buf[0] = T.uint64(w[0])
            cfg_buf[2] = T.uint64(w[2])
            cfg_buf[3] = T.uint64(w[3])
            cfg_buf[6] = T.uint64(w[6])
            T.evaluate(T.call_llvm_intrin("void", "llvm.x86.ldtilecfg", cfg_buf.access_ptr("r")))
            for c in T.unroll(4):
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tilezero", T.uint8(c)))
            for r in T.unroll(2):
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tileloadd64", T.uint8(4 + r), T.address_of(A[0, 0]), T.int64(64)))
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tileloadd64", T.uint8(6 + r), T.address_of(B[0, 0]), T.int64(64)))
            for _ in range(iters):
                for c in T.unroll(4):
                    T.evaluate(T.call_llvm_intrin("void", dot, T.uint8(c), T.uint8(4 + c // 2), T.uint8(6 + c % 2)))
            for c in T.unroll(4):
                T.evaluate(
                    T.call_llvm_intrin("void", "llvm.x86.tilestored64", T.uint8(c), T.address_of(C[t, c, 0, 0]), T.int64(64))
                )

    return peak, threads * iters * 4 * OPS[kind]


def load_kernel(threads: int, iters: int, lda: int):
    """The int8 2x2 step of the tuned kernels with its tile loads: every round loads 2 A tiles (rows
    ``lda`` bytes apart) and 2 B tiles (64 bytes apart) from a per-thread block that stays in cache,
    then runs the 4 tile products. Against ``peak_kernel``: what feeding the tiles from L1 costs."""
    from tvm.script import tirx as T

    from heron_cpu_dlboost.amx_intrin import TileShape, config_words

    w = config_words(TileShape("int8", rows=16, mt=2, nt=2, kc=1, tk=16))
    a_rows = 32 * lda // 64  # the A block: 32 rows of lda bytes, as 64-byte lines

    @T.prim_func
    def loads(
        A: T.Buffer((threads, a_rows, 64), "uint8"),
        B: T.Buffer((threads, 2, 16, 64), "int8"),
        C: T.Buffer((threads, 4, 16, 16), "int32"),
    ):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            cfg_buf = T.decl_buffer((8,), "uint64", scope="local")
            for i in T.unroll(8):
                cfg_buf[i] = T.uint64(0)
            cfg_buf[0] = T.uint64(w[0])
            cfg_buf[2] = T.uint64(w[2])
            cfg_buf[3] = T.uint64(w[3])
            cfg_buf[6] = T.uint64(w[6])
            T.evaluate(T.call_llvm_intrin("void", "llvm.x86.ldtilecfg", cfg_buf.access_ptr("r")))
            for c in T.unroll(4):
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tilezero", T.uint8(c)))
            for _ in range(iters):
                for r in T.unroll(2):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.x86.tileloadd64",
                            T.uint8(4 + r),
                            T.address_of(A[t, r * 16 * lda // 64, 0]),
                            T.int64(lda),
                        )
                    )
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void", "llvm.x86.tileloadd64", T.uint8(6 + r), T.address_of(B[t, r, 0, 0]), T.int64(64)
                        )
                    )
                for c in T.unroll(4):
                    T.evaluate(
                        T.call_llvm_intrin("void", "llvm.x86.tdpbusd", T.uint8(c), T.uint8(4 + c // 2), T.uint8(6 + c % 2))
                    )
            for c in T.unroll(4):
                T.evaluate(
                    T.call_llvm_intrin("void", "llvm.x86.tilestored64", T.uint8(c), T.address_of(C[t, c, 0, 0]), T.int64(64))
                )

    return loads, threads * iters * 4 * OPS["int8"], a_rows


def measure_loads(threads: int, lda: int, mcpu: str | None = None, iters: int = 20_000, repeat: int = 7) -> float:
    """GOPS (best of ``repeat``) of ``load_kernel`` on ``threads`` threads."""
    import tvm

    from heron_core import process, tvm_compat
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    process.prepare(["linux_amx_tiledata"])
    func, ops, a_rows = load_kernel(threads, iters, lda)
    target = {"kind": "llvm", "mcpu": mcpu or llvm_host_cpu(), "num-cores": threads}
    module = tvm_compat.build(tvm.IRModule({"main": func}), target).jit()
    dev = tvm_compat.device("cpu")
    args = tvm_compat.to_device(
        [np.ones((threads, a_rows, 64), "uint8"), np.ones((threads, 2, 16, 64), "int8"), np.zeros((threads, 4, 16, 16), "int32")],
        dev,
    )
    costs = tvm_compat.time_kernel(module, dev, args, number=1, repeat=repeat, min_repeat_ms=100, cache_flush=False)
    assert (args[2].numpy() == iters * 64).all(), "load kernel computed a wrong sum"
    return ops / min(costs) / 1e9


def measure_peak(threads: int, kind: str = "int8", mcpu: str | None = None, iters: int = 20_000, repeat: int = 7) -> float:
    """GOPS (best of ``repeat``) of the tile-product loop on ``threads`` threads (TVM_NUM_THREADS must allow them)."""
    import tvm

    from heron_core import process, tvm_compat
    from heron_core.operator import numpy_dtype
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    process.prepare(["linux_amx_tiledata"])
    func, ops = peak_kernel(threads, iters, kind)
    target = {"kind": "llvm", "mcpu": mcpu or llvm_host_cpu(), "num-cores": threads}
    module = tvm_compat.build(tvm.IRModule({"main": func}), target).jit()
    dev = tvm_compat.device("cpu")
    cols, (a, b, c) = (64, ("uint8", "int8", "int32")) if kind == "int8" else (32, ("bfloat16", "bfloat16", "float32"))
    args = tvm_compat.to_device(
        [np.ones((16, cols), numpy_dtype(a)), np.ones((16, cols), numpy_dtype(b)), np.zeros((threads, 4, 16, 16), c)], dev
    )
    costs = tvm_compat.time_kernel(module, dev, args, number=1, repeat=repeat, min_repeat_ms=100, cache_flush=False)
    per_element = 64 if kind == "int8" else 32  # every round adds a row of ones . a column of ones
    assert (args[2].numpy() == iters * per_element).all(), "peak kernel computed a wrong sum"
    return ops / min(costs) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--loads-lda", type=int, nargs="*", default=[64, 1024, 4096], help="A row strides of the tile-load variant")
    args = ap.parse_args()
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    res = {kind: {"1": measure_peak(1, kind), str(args.threads): measure_peak(args.threads, kind)} for kind in OPS}
    loads = {
        f"lda{lda}": {"1": measure_loads(1, lda), str(args.threads): measure_loads(args.threads, lda)} for lda in args.loads_lda
    }
    print(json.dumps({"amx_peak_gops": res, "int8_2x2_with_tile_loads_gops": loads}))


if __name__ == "__main__":
    main()
