"""AMX peak microbenchmark: register-only tdpbusd (int8) / tdpbf16ps (bf16) loops, built with TVM.

Each thread loads the tile configuration, fills 2 A and 2 B tiles once and runs ``iters`` rounds
of 4 independent tile products into 4 accumulators (2x2, as the tuned kernels do), so the loop is
bound by the tile unit's throughput alone. One tdpbusd = 16 x 16 x 64 multiply-adds = 32768 ops
(tdpbf16ps: 16 x 16 x 32 = 16384 flops). Needs a CPU with AMX.

    python bench/cpu_amx/amx_peak.py --threads 16
    python bench/cpu_amx/amx_peak.py --threads 4 16 --loads-lda 64 --stream 64:4:4 64:512:4 4160:520:4   # operands from L1 / L2
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

OPS = {"int8": 16 * 16 * 64 * 2, "bfloat16": 16 * 16 * 32 * 2}


def _tile_macros(kind: str):
    """What every kernel here does per thread: load the tile configuration of a 2x2 step (2 A and 2 B
    tiles of 16 x 64 bytes) and zero the 4 accumulators; and, at the end, store the accumulators."""
    from tvm.script import tirx as T

    from heron_cpu_dlboost.amx_intrin import TileShape, load_tile_config

    load_config = load_tile_config(TileShape(kind, rows=16, mt=2, nt=2, kc=1, tk=16))

    @T.macro
    def start_tiles():
        load_config()
        for c in T.unroll(4):
            T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tilezero", T.uint8(c)))

    @T.macro
    def store_accumulators(C, t):
        for c in T.unroll(4):
            T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tilestored64", T.uint8(c), T.address_of(C[t, c, 0, 0]), T.int64(64)))

    return start_tiles, store_accumulators



def peak_kernel(threads: int, iters: int, kind: str = "int8"):
    from tvm.script import tirx as T

    start_tiles, store_accumulators = _tile_macros(kind)
    a_dt, b_dt, c_dt, dot = ("uint8", "int8", "int32", "llvm.x86.tdpbusd") if kind == "int8" else (
        "bfloat16", "bfloat16", "float32", "llvm.x86.tdpbf16ps")  # fmt: skip
    cols = 64 if kind == "int8" else 32

    @T.prim_func
    def peak(A: T.Buffer((16, cols), a_dt), B: T.Buffer((16, cols), b_dt), C: T.Buffer((threads, 4, 16, 16), c_dt)):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            start_tiles()
            for r in T.unroll(2):
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tileloadd64", T.uint8(4 + r), T.address_of(A[0, 0]), T.int64(64)))
                T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tileloadd64", T.uint8(6 + r), T.address_of(B[0, 0]), T.int64(64)))
            for _ in range(iters):
                for c in T.unroll(4):
                    T.evaluate(T.call_llvm_intrin("void", dot, T.uint8(c), T.uint8(4 + c // 2), T.uint8(6 + c % 2)))
            store_accumulators(C, t)

    return peak, threads * iters * 4 * OPS[kind]


def load_kernel(threads: int, iters: int, lda: int):
    """The int8 2x2 step of the tuned kernels with its tile loads: every round loads 2 A tiles (rows
    ``lda`` bytes apart) and 2 B tiles (64 bytes apart) from a per-thread block that stays in cache,
    then runs the 4 tile products. Against ``peak_kernel``: what feeding the tiles from L1 costs."""
    from tvm.script import tirx as T

    start_tiles, store_accumulators = _tile_macros("int8")
    a_rows = 32 * lda // 64  # the A block: 32 rows of lda bytes, as 64-byte lines

    @T.prim_func
    def loads(
        A: T.Buffer((threads, a_rows, 64), "uint8"),
        B: T.Buffer((threads, 2, 16, 64), "int8"),
        C: T.Buffer((threads, 4, 16, 16), "int32"),
    ):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            start_tiles()
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
            store_accumulators(C, t)

    return loads, threads * iters * 4 * OPS["int8"], a_rows


def stream_kernel(threads: int, iters: int, a_lda: int, a_kib: int, b_kib: int):
    """The int8 2x2 step with operands streamed through per-thread buffers larger than L1, as the GEMM
    kernels see them: every round loads 2 A tiles (rows ``a_lda`` bytes apart; K steps of 64 bytes
    walk along the rows, then the next 32 rows; ``a_lda`` = 64 is a tile-contiguous packing) from an
    ``a_kib`` KiB block and 2 B tiles (packed: 2 KiB contiguous per step) from a ``b_kib`` KiB block,
    cycling; accumulators stay in tiles (no C traffic). Buffers of 4 KiB sit in L1, of 256 KiB-1 MiB
    in L2, of 16 MiB and more in L3 / memory."""
    from tvm.script import tirx as T

    start_tiles, store_accumulators = _tile_macros("int8")
    a_lines, b_lines = a_kib * 16, b_kib * 16
    k_steps = a_lda // 64
    row_blocks = a_kib * 1024 // (32 * a_lda)
    b_steps = b_kib * 1024 // 2048
    if row_blocks < 1 or row_blocks * 32 * a_lda != a_kib * 1024 or b_steps < 1 or a_lda % 64:
        raise ValueError(f"A block of {a_kib} KiB is not a whole number of 32 rows x {a_lda} bytes, or B under 2 KiB")

    @T.prim_func
    def stream(
        A: T.Buffer((threads, a_lines, 64), "uint8"),
        B: T.Buffer((threads, b_lines, 64), "int8"),
        C: T.Buffer((threads, 4, 16, 16), "int32"),
    ):
        T.func_attr({"global_symbol": "main", "tirx.noalias": True})
        for t in T.parallel(threads):
            start_tiles()
            for it in range(iters):
                for r in T.unroll(2):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.x86.tileloadd64",
                            T.uint8(4 + r),
                            T.address_of(A[t, ((it // k_steps) % row_blocks * 32 + r * 16) * k_steps + it % k_steps, 0]),
                            T.int64(a_lda),
                        )
                    )
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.x86.tileloadd64",
                            T.uint8(6 + r),
                            T.address_of(B[t, (it % b_steps * 2 + r) * 16, 0]),
                            T.int64(64),
                        )
                    )
                for c in T.unroll(4):
                    T.evaluate(
                        T.call_llvm_intrin("void", "llvm.x86.tdpbusd", T.uint8(c), T.uint8(4 + c // 2), T.uint8(6 + c % 2))
                    )
            store_accumulators(C, t)

    return stream, threads * iters * 4 * OPS["int8"], a_lines, b_lines


def measure_stream(
    threads: int, a_lda: int, a_kib: int, b_kib: int, mcpu: str | None = None, iters: int = 20_000, repeat: int = 5
) -> float:
    """GOPS (best of ``repeat``) of ``stream_kernel`` on ``threads`` threads."""
    import tvm

    from heron_core import process, tvm_compat
    from heron_cpu_dlboost.cpu import llvm_host_cpu

    process.prepare(["linux_amx_tiledata"])
    func, ops, a_lines, b_lines = stream_kernel(threads, iters, a_lda, a_kib, b_kib)
    target = {"kind": "llvm", "mcpu": mcpu or llvm_host_cpu(), "num-cores": threads}
    module = tvm_compat.build(tvm.IRModule({"main": func}), target).jit()
    dev = tvm_compat.device("cpu")
    a = np.ones((threads, a_lines, 64), "uint8")
    b = np.ones((threads, b_lines, 64), "int8")
    args = tvm_compat.to_device([a, b, np.zeros((threads, 4, 16, 16), "int32")], dev)
    costs = tvm_compat.time_kernel(module, dev, args, number=1, repeat=repeat, min_repeat_ms=100, cache_flush=False)
    assert (args[2].numpy() == iters * 64).all(), "stream kernel computed a wrong sum"
    return ops / min(costs) / 1e9


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
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[len(os.sched_getaffinity(0))],
        help="thread counts of the peaks (1 is always measured); the tile-load variants run on 1 and the most",
    )
    ap.add_argument("--loads-lda", type=int, nargs="*", default=[64, 1024, 4096], help="A row strides of the tile-load variant")
    ap.add_argument(
        "--stream",
        nargs="*",
        default=[],
        metavar="LDA:A_KIB:B_KIB",
        help="stream_kernel variants: A row stride (bytes), A and B block sizes (KiB), e.g. 64:512:4 (A from L2, packed)",
    )
    ap.add_argument("--kinds", nargs="*", default=list(OPS), choices=list(OPS))
    ap.add_argument(
        "--cpu-sets",
        nargs="*",
        default=[],
        metavar="CPUS",
        help="also measure the int8 peak and the --stream variants with TVM's threads pinned one per CPU of each set "
        "(e.g. 0-7 0,2,4,6,8,10,12,14): which vCPUs share a core's AMX unit",
    )
    args = ap.parse_args()
    counts = sorted({1, *args.threads})
    ends = sorted({1, max(counts)})  # the tile-load variants: 1 thread and the most
    os.environ.setdefault("TVM_NUM_THREADS", str(max(counts)))
    res = {kind: {str(n): measure_peak(n, kind) for n in counts} for kind in args.kinds}
    print(json.dumps({"amx_peak_gops": res}), flush=True)
    loads = {f"lda{lda}": {str(n): measure_loads(n, lda) for n in ends} for lda in args.loads_lda}
    out = {"amx_peak_gops": res, "int8_2x2_with_tile_loads_gops": loads}
    if args.stream:
        out["int8_2x2_streamed_gops"] = {}
        for spec in args.stream:
            lda, a_kib, b_kib = (int(x) for x in spec.split(":"))
            out["int8_2x2_streamed_gops"][f"lda{lda}_A{a_kib}KiB_B{b_kib}KiB"] = {
                str(n): measure_stream(n, lda, a_kib, b_kib) for n in ends
            }
            print(json.dumps({spec: out["int8_2x2_streamed_gops"][f"lda{lda}_A{a_kib}KiB_B{b_kib}KiB"]}), flush=True)
    for text in args.cpu_sets:
        cpus = cpu_list(text)
        pin(cpus)
        row = {"int8_peak": measure_peak(len(cpus), "int8")}
        for spec in args.stream:
            lda, a_kib, b_kib = (int(x) for x in spec.split(":"))
            row[f"stream_lda{lda}_A{a_kib}KiB_B{b_kib}KiB"] = measure_stream(len(cpus), lda, a_kib, b_kib)
        out.setdefault("pinned_gops", {})[text] = row
        print(json.dumps({f"cpus {text}": row}), flush=True)
    print(json.dumps(out))


def cpu_list(text: str) -> list[int]:
    """'0-3,8' -> [0, 1, 2, 3, 8]"""
    cpus = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def pin(cpus: list[int]) -> None:
    """TVM's thread pool: len(cpus) threads, one on each of ``cpus`` (TVM_NUM_THREADS must allow that many)."""
    import tvm

    tvm.get_global_func("runtime.config_threadpool")(-2, len(cpus), [str(c) for c in cpus])  # kSpecifyOneCorePerThread


if __name__ == "__main__":
    main()
