"""The 16x4 int8 dot-product micro-kernel: C[16] (s32) += sum_k A[k] (u8) * B[16, 4] (s8).

TVM's in-tree ``dot_16x4_vnni`` passes <16 x i32> to ``llvm.x86.avx512.vpdpbusd.512``, which
the bundled LLVM (22) rejects; this one feeds it the <64 x i8> operands it now expects.
The ``generic`` implementation computes the same block with plain vector code: it lets the
whole template be built and checked on a CPU without VNNI (tests), never for speed.
"""

from __future__ import annotations

LANES, REDUCE = 16, 4
NAMES = {"vnni": "heron_dot_16x4_u8s8s32_vnni", "generic": "heron_dot_16x4_u8s8s32_generic"}
_registered = False
_remainders: set[str] = set()  # the remainder micro-kernels registered in this process


def register() -> None:
    global _registered
    if _registered:
        return
    from tvm import s_tir
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for i, k in T.grid(16, 4):
                with T.sblock("update"):
                    vi, vk = T.axis.remap("SR", [i, k])
                    C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    @T.prim_func(s_tir=True)
    def vnni(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a4 = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                T.reinterpret(T.broadcast(a4, 16), dtype="uint8x64"),
                B.vload([0, 0], dtype="int8x64"),
                dtype="int32x16",
            )

    @T.prim_func(s_tir=True)
    def generic(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for k in T.serial(4):
                for i in T.vectorized(16):
                    C[i] = C[i] + T.cast(A[k], "int32") * T.cast(B[i, k], "int32")

    s_tir.TensorIntrin.register(NAMES["vnni"], desc, vnni, override=True)
    s_tir.TensorIntrin.register(NAMES["generic"], desc, generic, override=True)
    _registered = True


def register_remainder(lanes: int, grouped: bool) -> dict[str, str]:
    """The micro-kernel of the last, partial lane block: C[chunks, lanes] (s32) += A[chunks, 4] (u8) . B[chunks, lanes, 4]
    (s8) reduced over the 4, with chunks = 16 / lanes. One vpdpbusd covers ``chunks`` dots of 4 consecutive reduction
    elements x ``lanes`` output lanes (the sum over chunks is left to a block after), so the partial block costs
    1 / chunks of the vpdpbusd of one padded to 16 lanes. A is ``chunks`` x 4 contiguous bytes, each group of 4 repeated
    ``lanes`` times; B is read from the weight's (lanes/16, reduce/4, 16, 4) packing: the first ``lanes`` lanes of
    ``chunks`` groups of 4 reduction elements. ``grouped``: A is read from a (..., reduce/4, 4) packing (indexed by group
    and element), else from its logical layout (one flat index).
    """
    chunks = LANES // lanes
    names = {kind: f"heron_dot_{chunks}x{lanes}x4{'g' if grouped else ''}_u8s8s32_{kind}" for kind in ("vnni", "generic")}
    if names["vnni"] in _remainders:
        return names
    from tvm import s_tir
    from tvm.script import tirx as T

    width = chunks * REDUCE  # bytes of A per call
    a_shape, a_zero = ((chunks, REDUCE), [0, 0]) if grouped else ((width,), [0])
    a_at = (lambda ci, t: (ci, t)) if grouped else (lambda ci, t: (ci * REDUCE + t,))  # noqa: E731
    a_all = (lambda A: A[0:chunks, 0:REDUCE]) if grouped else (lambda A: A[0:width])  # noqa: E731
    a_index = [ci * REDUCE + t for ci in range(chunks) for _ in range(lanes) for t in range(REDUCE)]

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (chunks, lanes), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:chunks, 0:lanes], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:chunks, 0:lanes])
            for ci, n, t in T.grid(chunks, lanes, REDUCE):
                with T.sblock("update"):
                    vc, vn, vt = T.axis.remap("SSR", [ci, n, t])
                    C[vc, vn] = C[vc, vn] + T.cast(A[a_at(vc, vt)], "int32") * T.cast(B[vc, vn, vt], "int32")

    @T.prim_func(s_tir=True)
    def vnni(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (chunks, lanes), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:chunks, 0:lanes], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:chunks, 0:lanes])
            C[0, T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0, 0], dtype="int32x16"),
                T.Shuffle([A.vload(a_zero, dtype=f"uint8x{width}")] * (64 // width), a_index),
                T.Shuffle([B.vload([ci, 0, 0], dtype=f"int8x{lanes * REDUCE}") for ci in range(chunks)], list(range(64))),
                dtype="int32x16",
            )

    @T.prim_func(s_tir=True)
    def generic(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (chunks, lanes), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:chunks, 0:lanes], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:chunks, 0:lanes])
            for t in T.serial(REDUCE):
                for ci, n in T.grid(chunks, lanes):
                    C[ci, n] = C[ci, n] + T.cast(A[a_at(ci, t)], "int32") * T.cast(B[ci, n, t], "int32")

    s_tir.TensorIntrin.register(names["vnni"], desc, vnni, override=True)
    s_tir.TensorIntrin.register(names["generic"], desc, generic, override=True)
    _remainders.add(names["vnni"])
    return names
