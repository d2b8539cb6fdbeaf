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


# --- mma.sync m16n8k16 with ldmatrix ------------------------------------------------------------
# A 16x16 operand or accumulator tile lives in a warp's registers: scope "warp", 32 threads x 8
# fp16 (operands) or accumulator elements. Element (i, j) of the tile is register ``local`` of
# thread ``tid`` = warp_layout(i, j) (the PTX fragment layout of m16n8k16; for B the rows are k).
# A schedule reshapes its warp-scope buffers with this map (transform_layout), so the intrinsics
# below see [32, 8] tiles; one 16x16x16 step is two mma.sync.m16n8k16 (n = 0..7, 8..15).
WARP = 32
MMA_LOCAL = 8  # elements of a 16x16 tile per thread


def warp_layout(i, j):
    """(row, col) of a 16x16 tile -> (thread, register): ldmatrix's and mma.sync's fragment layout."""
    return 4 * (i % 8) + (j % 8) // 2, 4 * (j // 8) + (i // 8) * 2 + j % 2


def warp_tile_map(b, i, j):
    """A warp-scope buffer [b, rows, cols] -> [b, rows/16, cols/16, thread, register]."""
    return (b, i // 16, j // 16, *warp_layout(i % 16, j % 16))


def _ldmatrix_offset(transposed_rows: bool):
    """The shared-memory element offset each thread gives ldmatrix.x4 (8 row addresses per 8x8
    matrix, threads 8q..8q+7 naming matrix q's rows). Row-major: matrices (rows 0-7, cols 0-7),
    (8-15, 0-7), (0-7, 8-15), (8-15, 8-15); ``transposed_rows`` (a B^T[n, k] tile): (0-7, 0-7),
    (0-7, 8-15), (8-15, 0-7), (8-15, 8-15), as mma's B fragment wants them."""
    if transposed_rows:
        return lambda tx, stride: stride * 8 * (tx // 16) + stride * (tx % 8) + 8 * ((tx % 16) // 8)
    return lambda tx, stride: stride * (tx % 16) + 8 * (tx // 16)


@cache
def ldmatrix(operand: str, layout: str = "row_major") -> str:
    """shared.dyn 16x16 fp16 tile -> warp registers with ldmatrix.x4: A[m, k] (``operand`` "a"),
    B[k, n] (``layout`` row_major: ldmatrix.trans) or B^T[n, k] (col_major)."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    trans = operand == "b" and layout == "row_major"  # B[k, n] rows are k: transpose while loading
    offset = _ldmatrix_offset(operand == "b" and layout == "col_major")

    @T.prim_func(s_tir=True)
    def desc(w: T.handle, s: T.handle) -> None:
        S = T.match_buffer(s, (16, 16), "float16", align=64, offset_factor=16, scope=SHARED)
        W = T.match_buffer(w, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        with T.sblock("root"):
            T.reads(S[0:16, 0:16])
            T.writes(W[0:WARP, 0:MMA_LOCAL])
            for i, j in T.grid(16, 16):
                with T.sblock("shared_warp"):
                    v0, v1 = T.axis.remap("SS", [i, j])
                    T.reads(S[v0, v1])
                    tid, local = T.meta_var(warp_layout(v0, v1))
                    T.writes(W[tid, local])
                    W[tid, local] = S[v0, v1]

    @T.prim_func(s_tir=True)
    def impl(w: T.handle, s: T.handle) -> None:
        s0 = T.int32()
        s1 = T.int32()
        S = T.match_buffer(s, (16, 16), "float16", align=64, offset_factor=16, scope=SHARED, strides=[s0, s1])
        W = T.match_buffer(w, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        with T.sblock("root"):
            T.reads(S[0:16, 0:16])
            T.writes(W[0:WARP, 0:MMA_LOCAL])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                T.evaluate(
                    T.ptx_legacy.ldmatrix(
                        trans, 4, ".b16", W.data, W.elem_offset + MMA_LOCAL * tx, S.access_ptr("r"), offset(tx, s0),
                        dtype="float16",
                    )
                )

    name = f"heron_ldmatrix_{operand}_{layout}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def mma_sync(acc: str, b_layout: str = "row_major") -> str:
    """C (16x16, ``acc``) += A (16x16) . B (16x16), all in warp registers: two mma.sync.m16n8k16."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T
    from tvm.tirx import Cast

    def cast(v):
        return v if acc == "float16" else Cast(acc, v)

    def b_index(k, n):
        return warp_layout(k, n) if b_layout == "row_major" else warp_layout(n, k)

    abbr = {"float16": "fp16", "float32": "fp32"}[acc]

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        B = T.match_buffer(b, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        C = T.match_buffer(c, (WARP, MMA_LOCAL), acc, align=64, offset_factor=16, scope="warp")
        with T.sblock("root"):
            T.reads(C[0:WARP, 0:MMA_LOCAL], A[0:WARP, 0:MMA_LOCAL], B[0:WARP, 0:MMA_LOCAL])
            T.writes(C[0:WARP, 0:MMA_LOCAL])
            for i, j, r in T.grid(16, 16, 16):
                with T.sblock("C"):
                    vi, vj, vr = T.axis.remap("SSR", [i, j, r])
                    tc, lc = T.meta_var(warp_layout(vi, vj))
                    ta, la = T.meta_var(warp_layout(vi, vr))
                    tb, lb = T.meta_var(b_index(vr, vj))
                    T.reads(C[tc, lc], A[ta, la], B[tb, lb])
                    T.writes(C[tc, lc])
                    C[tc, lc] = C[tc, lc] + cast(A[ta, la]) * cast(B[tb, lb])

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        B = T.match_buffer(b, (WARP, MMA_LOCAL), "float16", align=64, offset_factor=16, scope="warp")
        C = T.match_buffer(c, (WARP, MMA_LOCAL), acc, align=64, offset_factor=16, scope="warp")
        with T.sblock("root"):
            T.reads(C[0:WARP, 0:MMA_LOCAL], A[0:WARP, 0:MMA_LOCAL], B[0:WARP, 0:MMA_LOCAL])
            T.writes(C[0:WARP, 0:MMA_LOCAL])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                for half in T.unroll(2):  # n = 0..7, then 8..15: registers 0-3, then 4-7 of B and C
                    T.evaluate(
                        T.ptx_legacy.mma(
                            "m16n8k16", "row", "col", "fp16", "fp16", abbr,
                            A.data, A.elem_offset + tx * MMA_LOCAL,
                            B.data, B.elem_offset + tx * MMA_LOCAL + half * (MMA_LOCAL // 2),
                            C.data, C.elem_offset + tx * MMA_LOCAL + half * (MMA_LOCAL // 2),
                            False, dtype=acc,
                        )
                    )

    name = f"heron_mma_m16n8k16_f16_{acc}_b_{b_layout}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def mma_fill(acc: str) -> str:
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T
    from tvm.tirx import IntImm

    zero = IntImm("int32", 0).astype(acc)

    @T.prim_func(s_tir=True)
    def desc(c: T.handle) -> None:
        C = T.match_buffer(c, (WARP, MMA_LOCAL), acc, scope="warp")
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:WARP, 0:MMA_LOCAL])
            for i, j in T.grid(16, 16):
                with T.sblock("init"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    tid, local = T.meta_var(warp_layout(vi, vj))
                    T.reads()
                    T.writes(C[tid, local])
                    C[tid, local] = zero

    @T.prim_func(s_tir=True)
    def impl(c: T.handle) -> None:
        C = T.match_buffer(c, (WARP, MMA_LOCAL), acc, scope="warp", offset_factor=1)
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:WARP, 0:MMA_LOCAL])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                T.evaluate(T.cuda.mma_fill_legacy(MMA_LOCAL, C.data, C.elem_offset, dtype=acc))

    name = f"heron_mma_fill_{acc}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name


@cache
def mma_store(acc: str, scope: str) -> str:
    """warp registers -> a 16x16 tile in ``scope`` (global or shared.dyn): each thread stores its
    four pairs of adjacent columns as 2-element vectors."""
    from tvm.s_tir import TensorIntrin
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(w: T.handle, c: T.handle) -> None:
        W = T.match_buffer(w, (WARP, MMA_LOCAL), acc, scope="warp")
        C = T.match_buffer(c, (16, 16), acc, scope=scope)
        with T.sblock("root"):
            T.reads(W[0:WARP, 0:MMA_LOCAL])
            T.writes(C[0:16, 0:16])
            for i, j in T.grid(16, 16):
                with T.sblock("store"):
                    v0, v1 = T.axis.remap("SS", [i, j])
                    tid, local = T.meta_var(warp_layout(v0, v1))
                    T.reads(W[tid, local])
                    T.writes(C[v0, v1])
                    C[v0, v1] = W[tid, local]

    @T.prim_func(s_tir=True)
    def impl(w: T.handle, c: T.handle) -> None:
        s0 = T.int32()
        s1 = T.int32()
        W = T.match_buffer(w, (WARP, MMA_LOCAL), acc, scope="warp", offset_factor=1)
        C = T.match_buffer(c, (16, 16), acc, scope=scope, offset_factor=1, strides=[s0, s1])
        with T.sblock("root"):
            T.reads(W[0:WARP, 0:MMA_LOCAL])
            T.writes(C[0:16, 0:16])
            for tx in T.thread_binding(0, WARP, "threadIdx.x"):
                for local in T.serial(MMA_LOCAL):
                    C[8 * (local % 4 // 2) + tx // 4, 8 * (local // 4) + (tx % 4) * 2 + local % 2] = W[tx, local]

    name = f"heron_mma_store_{acc}_{scope.replace('.', '_')}"
    TensorIntrin.register(name, desc, impl, override=True)
    return name
