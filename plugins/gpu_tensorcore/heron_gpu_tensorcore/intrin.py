"""WMMA tensor intrinsics (load / fill / mma / store) for any legal fp16 fragment shape.

TVM ships 16x16x16 versions in ``tvm.s_tir.tensor_intrin.cuda``, but importing that module
registers ~100 intrinsics and takes ~30 s; this module registers only what a schedule uses,
on first use, under its own names. A fragment is (m, n, k) with k = 16 and m x n = 256:
16x16, 32x8 and 8x32 (the fp16 WMMA shapes of sm_70+). B is either row-major (B[k, n] in
shared memory) or col-major (stored transposed, B^T[n, k]: operands contiguous along k).
"""

from __future__ import annotations

from functools import cache

FRAGMENTS: dict[int, tuple[int, int, int]] = {0: (16, 16, 16), 1: (32, 8, 16), 2: (8, 32, 16)}
SHARED = "shared.dyn"
B_LAYOUTS = ("row_major", "col_major")


def b_shape(n: int, k: int, layout: str) -> tuple[int, int]:
    """The (rows, cols) of a B fragment's tile as stored: k x n row-major, n x k col-major."""
    return (k, n) if layout == "row_major" else (n, k)


def _b_elem(B, r, j, layout: str):
    """B[r, j] of the k x n operand, from a buffer stored as ``layout``."""
    return B[r, j] if layout == "row_major" else B[j, r]


def _frag_index(buf, stride, rows, cols):
    """Which fragment of a fragment-scope buffer an access starts at (wmma fragments are
    addressed by index, not by pointer)."""
    return buf.elem_offset // stride // rows * (stride // cols) + buf.elem_offset % stride // cols


def _copy_desc(rows: int, cols: int, dtype: str, src: str, dst: str):
    """What a fragment load or store computes: a rows x cols tile copied from scope ``src`` to ``dst``."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (rows, cols), dtype, align=64, offset_factor=cols, scope=src)
        C = T.match_buffer(c, (rows, cols), dtype, align=64, offset_factor=cols, scope=dst)
        with T.sblock("root"):
            T.reads(A[0:rows, 0:cols])
            T.writes(C[0:rows, 0:cols])
            for i, j in T.grid(rows, cols):
                with T.sblock("copy"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    C[vi, vj] = A[vi, vj]

    return desc


@cache
def load(m: int, n: int, k: int, operand: str, layout: str = "row_major") -> str:
    """shared.dyn -> wmma.matrix_a (m x k, row-major) or wmma.matrix_b (k x n, as ``layout``)."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    rows, cols = (m, k) if operand == "a" else b_shape(n, k, layout)
    scope = f"wmma.matrix_{operand}"

    desc = _copy_desc(rows, cols, "float16", SHARED, scope)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, c: T.handle) -> None:
        s1 = T.int32()
        s0 = T.int32()
        d1 = T.int32()
        d0 = T.int32()
        A = T.match_buffer(a, (rows, cols), "float16", align=64, offset_factor=cols, scope=SHARED, strides=[s1, s0])
        C = T.match_buffer(c, (rows, cols), "float16", align=64, offset_factor=cols, scope=scope, strides=[d1, d0])
        with T.sblock("root"):
            T.reads(A[0:rows, 0:cols])
            T.writes(C[0:rows, 0:cols])
            T.evaluate(
                T.tvm_load_matrix_sync(
                    C.data, m, n, k, _frag_index(C, d1, rows, cols), A.access_ptr("r", ptr_type="float16"), s1, layout,
                    dtype="void",
                )
            )

    name = f"heron_wmma_load_{operand}_{m}x{n}x{k}_{layout}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def fill(m: int, n: int, k: int, dtype: str) -> str:
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T
    from tvm.tirx import IntImm

    zero = IntImm("int32", 0).astype(dtype)

    @T.prim_func(s_tir=True)
    def desc(c: T.handle) -> None:
        C = T.match_buffer(c, (m, n), dtype, align=64, offset_factor=n, scope="wmma.accumulator")
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:m, 0:n])
            for i, j in T.grid(m, n):
                with T.sblock("init"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    C[vi, vj] = zero

    @T.prim_func(s_tir=True)
    def impl(c: T.handle) -> None:
        d1 = T.int32()
        d0 = T.int32()
        C = T.match_buffer(c, (m, n), dtype, align=64, offset_factor=n, scope="wmma.accumulator", strides=[d1, d0])
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:m, 0:n])
            T.evaluate(T.tvm_fill_fragment(C.data, m, n, k, _frag_index(C, d1, m, n), T.float32(0), dtype="void"))

    name = f"heron_wmma_fill_{m}x{n}x{k}_{dtype}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def store(m: int, n: int, k: int, dtype: str, scope: str) -> str:
    """wmma.accumulator -> ``scope`` (global or shared.dyn), row-major."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    desc = _copy_desc(m, n, dtype, "wmma.accumulator", scope)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, c: T.handle) -> None:
        s1 = T.int32()
        s0 = T.int32()
        d1 = T.int32()
        d0 = T.int32()
        A = T.match_buffer(a, (m, n), dtype, align=64, offset_factor=n, scope="wmma.accumulator", strides=[d1, d0])
        C = T.match_buffer(c, (m, n), dtype, align=64, offset_factor=n, scope=scope, strides=[s1, s0])
        with T.sblock("root"):
            T.reads(A[0:m, 0:n])
            T.writes(C[0:m, 0:n])
            T.evaluate(
                T.tvm_store_matrix_sync(
                    A.data, m, n, k, _frag_index(A, d1, m, n), C.access_ptr("w", ptr_type=dtype), s1, "row_major",
                    dtype="void",
                )
            )

    name = f"heron_wmma_store_{m}x{n}x{k}_{dtype}_{scope.replace('.', '_')}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def mma(m: int, n: int, k: int, acc: str, b_layout: str = "row_major") -> str:
    """C (m x n, ``acc``) += A (m x k, fp16) . B (k x n, fp16, stored as ``b_layout``)."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T
    from tvm.tirx import Cast

    def cast(v):
        return v if acc == "float16" else Cast(acc, v)

    bs = b_shape(n, k, b_layout)

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (m, k), "float16", align=64, offset_factor=k, scope="wmma.matrix_a")
        B = T.match_buffer(b, bs, "float16", align=64, offset_factor=bs[1], scope="wmma.matrix_b")
        C = T.match_buffer(c, (m, n), acc, align=64, offset_factor=n, scope="wmma.accumulator")
        with T.sblock("root"):
            T.reads(C[0:m, 0:n], A[0:m, 0:k], B[0 : bs[0], 0 : bs[1]])
            T.writes(C[0:m, 0:n])
            for i, j, r in T.grid(m, n, k):
                with T.sblock(""):
                    vi, vj, vr = T.axis.remap("SSR", [i, j, r])
                    C[vi, vj] = C[vi, vj] + cast(A[vi, vr]) * cast(_b_elem(B, vr, vj, b_layout))

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        a1 = T.int32()
        a0 = T.int32()
        b1 = T.int32()
        b0 = T.int32()
        c1 = T.int32()
        c0 = T.int32()
        A = T.match_buffer(a, (m, k), "float16", align=64, offset_factor=k, scope="wmma.matrix_a", strides=[a1, a0])
        B = T.match_buffer(b, bs, "float16", align=64, offset_factor=bs[1], scope="wmma.matrix_b", strides=[b1, b0])
        C = T.match_buffer(c, (m, n), acc, align=64, offset_factor=n, scope="wmma.accumulator", strides=[c1, c0])
        with T.sblock("root"):
            T.reads(C[0:m, 0:n], A[0:m, 0:k], B[0 : bs[0], 0 : bs[1]])
            T.writes(C[0:m, 0:n])
            T.evaluate(
                T.tvm_mma_sync(
                    C.data, _frag_index(C, c1, m, n), A.data, _frag_index(A, a1, m, k), B.data, _frag_index(B, b1, *bs),
                    C.data, _frag_index(C, c1, m, n), dtype="void",
                )
            )

    name = f"heron_wmma_mma_{m}x{n}x{k}_f16_{acc}_b_{b_layout}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name
