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
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                T.reinterpret(T.broadcast(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), 16), dtype="uint8x64"),
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


def register_remainder(lanes: int, grouped: bool, chunks: int | None = None) -> dict[str, str]:
    """The micro-kernel of the last, partial lane block: C[lanes, chunks] (s32) += A[chunks, 4] (u8) . B[chunks, lanes, 4]
    (s8) reduced over the 4, with chunks = 16 / lanes by default. One vpdpbusd covers ``chunks`` dots of 4 consecutive
    reduction elements x ``lanes`` output lanes (the sum over chunks is left to a block after), so the partial block
    costs 1 / chunks of the vpdpbusd of one padded to 16 lanes. Its int32 lanes are lane-major, so A (``chunks`` x 4
    contiguous bytes) is repeated whole ``lanes`` times: one broadcast load. B is read from the weight's (lanes/16,
    reduce/4, 16, 4) packing: the first ``lanes`` lanes of ``chunks`` groups of 4 reduction elements. ``grouped``: A is
    read from a (..., reduce/4, 4) packing (indexed by group and element), else from its logical layout (one flat
    index). One chunk (the reduction's last groups) uses a narrower vpdpbusd: 4 or 8 int32 lanes (2 lanes in 4, zeros
    beyond).
    """
    chunks = chunks or LANES // lanes
    names = {kind: f"heron_dot_{lanes}x{chunks}x4{'g' if grouped else ''}_u8s8s32_{kind}" for kind in ("vnni", "generic")}
    if names["vnni"] in _remainders:
        return names
    from tvm import s_tir
    from tvm.script import tirx as T

    width = chunks * REDUCE  # bytes of A per call
    used = chunks * lanes  # int32 lanes of C
    vector = max(used, 4)  # those of the vpdpbusd
    copies = vector * REDUCE // width  # of A's bytes in its vector
    a_shape, a_zero = ((chunks, REDUCE), [0, 0]) if grouped else ((width,), [0])
    a_at = (lambda ci, t: (ci, t)) if grouped else (lambda ci, t: (ci * REDUCE + t,))  # noqa: E731
    a_all = (lambda A: A[0:chunks, 0:REDUCE]) if grouped else (lambda A: A[0:width])  # noqa: E731
    b_index = [(ci * lanes + n) * REDUCE + t for n in range(lanes) for ci in range(chunks) for t in range(REDUCE)]

    def widened(value, dtype: str, n: int):
        """``value`` (``n`` elements) followed by zeros up to the vpdpbusd's width."""
        total = vector * (REDUCE if dtype == "int8" else 1)
        zero = T.int8(0) if dtype == "int8" else T.int32(0)
        return value if n == total else T.Shuffle([value, T.broadcast(zero, total - n)], list(range(total)))

    def narrowed(value):
        """The first ``used`` lanes of the vpdpbusd's result (no binding: TVM would give it a workspace per call)."""
        return value if used == vector else T.Shuffle([value], list(range(used)))

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (lanes, chunks), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes, 0:chunks], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:lanes, 0:chunks])
            if chunks > 1:
                for n, ci, t in T.grid(lanes, chunks, REDUCE):
                    with T.sblock("update"):
                        vn, vc, vt = T.axis.remap("SSR", [n, ci, t])
                        C[vn, vc] = C[vn, vc] + T.cast(A[a_at(vc, vt)], "int32") * T.cast(B[vc, vn, vt], "int32")
            else:  # no loop of one: tensorize matches from the lanes' loop
                for n, t in T.grid(lanes, REDUCE):
                    with T.sblock("update"):
                        vn, vt = T.axis.remap("SR", [n, t])
                        C[vn, 0] = C[vn, 0] + T.cast(A[a_at(0, vt)], "int32") * T.cast(B[0, vn, vt], "int32")

    @T.prim_func(s_tir=True)
    def vnni(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (lanes, chunks), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes, 0:chunks], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:lanes, 0:chunks])
            C[0, T.ramp(T.int32(0), 1, used)] = narrowed(
                T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(f"llvm.x86.avx512.vpdpbusd.{vector * 32}"),
                    widened(C.vload([0, 0], dtype=f"int32x{used}"), "int32", used),
                    T.Shuffle([A.vload(a_zero, dtype=f"uint8x{width}")] * copies, list(range(copies * width))),
                    widened(
                        T.Shuffle([B.vload([ci, 0, 0], dtype=f"int8x{lanes * REDUCE}") for ci in range(chunks)], b_index),
                        "int8",
                        used * REDUCE,
                    ),
                    dtype=f"int32x{vector}",
                )
            )

    @T.prim_func(s_tir=True)
    def generic(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, a_shape, "uint8", offset_factor=1)
        B = T.match_buffer(b, (chunks, lanes, REDUCE), "int8", offset_factor=1, strides=[T.int32(), REDUCE, 1])
        C = T.match_buffer(c, (lanes, chunks), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes, 0:chunks], a_all(A), B[0:chunks, 0:lanes, 0:REDUCE])
            T.writes(C[0:lanes, 0:chunks])
            for t in T.serial(REDUCE):
                for n, ci in T.grid(lanes, chunks):
                    C[n, ci] = C[n, ci] + T.cast(A[a_at(ci, t)], "int32") * T.cast(B[ci, n, t], "int32")

    s_tir.TensorIntrin.register(names["vnni"], desc, vnni, override=True)
    s_tir.TensorIntrin.register(names["generic"], desc, generic, override=True)
    _remainders.add(names["vnni"])
    return names
