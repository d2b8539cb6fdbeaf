"""The depthwise micro-kernel: C[l] (s32) += sum_k A[k, l] (u8) * B[l, k] (s8), l < 16, k < 4.

vpdpbusd without a broadcast: each of the 16 lanes is another channel, its 4-byte dot 4 taps of
that channel's data times the same 4 taps of its weight. The data comes tap-major (4 rows of 16
channels: what a channels-last input gives with plain 16-byte copies) and one byte shuffle
(vpermb) interleaves it lane-major; writing it lane-major instead took a byte extract per element.
``generic`` computes the same block with plain vector code (CPUs without VNNI, tests)."""

from __future__ import annotations

from heron_cpu_dlboost.intrin import LANES, REDUCE

NAMES = {"vnni": "heron_dw_16x4_u8s8s32_vnni", "generic": "heron_dw_16x4_u8s8s32_generic"}
# The rows kernel's: the same dot on 4 taps that are 4 pixels of one padded input row (16 channels
# each, at any distance: the row stride), accumulating in registers (C is local).
ROWS_NAMES = {"vnni": "heron_dw_rows_16x4_u8s8s32_vnni", "generic": "heron_dw_rows_16x4_u8s8s32_generic"}
_registered = False
LANE_MAJOR = [16 * (i % REDUCE) + i // REDUCE for i in range(LANES * REDUCE)]  # byte 4l + k <- byte 16k + l


def register() -> None:
    global _registered
    if _registered:
        return
    from tvm import s_tir

    assert (LANES, REDUCE) == (16, 4)
    for names, rows in ((NAMES, False), (ROWS_NAMES, True)):
        desc, vnni, generic = _kernels(rows)
        s_tir.TensorIntrin.register(names["vnni"], desc, vnni, override=True)
        s_tir.TensorIntrin.register(names["generic"], desc, generic, override=True)
    _registered = True


def _kernels(rows: bool):
    """The (desc, vnni, generic) functions of the taps kernel (A one contiguous 64-byte block, C wherever the
    block's output is) or, with ``rows``, of the rows kernel (A's 4 taps 16 bytes each at any row stride, C in
    registers)."""
    from tvm import tirx
    from tvm.script import tirx as T

    strides = [tirx.Var("lda", "int32"), 1] if rows else None
    scope = "local" if rows else "global"
    if rows:
        a_bytes = lambda A: [A.vload([k, 0], dtype="uint8x16") for k in range(REDUCE)]  # noqa: E731
    else:
        a_bytes = lambda A: [A.vload([0, 0], dtype="uint8x64")]  # noqa: E731

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4, 16), "uint8", offset_factor=1, strides=strides)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1, scope=scope)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4, 0:16], B[0:16, 0:4])
            T.writes(C[0:16])
            for i, k in T.grid(16, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk, vi], "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def vnni(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4, 16), "uint8", offset_factor=1, strides=strides)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1, scope=scope)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4, 0:16], B[0:16, 0:4])
            T.writes(C[0:16])
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                T.Shuffle(a_bytes(A), LANE_MAJOR),
                B.vload([0, 0], dtype="int8x64"),
                dtype="int32x16",
            )

    @T.prim_func(s_tir=True)
    def generic(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4, 16), "uint8", offset_factor=1, strides=strides)
        B = T.match_buffer(b, (16, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1, scope=scope)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4, 0:16], B[0:16, 0:4])
            T.writes(C[0:16])
            for k in T.serial(4):
                for i in T.vectorized(16):
                    C[i] = C[i] + T.cast(A[k, i], "int32") * T.cast(B[i, k], "int32")

    return desc, vnni, generic
