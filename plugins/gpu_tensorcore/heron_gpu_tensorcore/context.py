"""TensorCoreContext: the CUDA Tensor Core schedule template of a batched GEMM view, and its rules.

The warp-level math is WMMA fragments or, with the ``mma`` knob (sm_80+), mma.sync m16n8k16 fed by
ldmatrix: 16x16x16 tiles in registers laid out as the PTX fragments (intrin.warp_layout), lowered
with lowering.py's workaround for TVM 0.27's LowerWarpMemory.

Loop structure of the GEMM C[b, m, n] (see gemm_view.py for how operators map onto it):

    blockIdx.x  [b, m / BM, n / BN]                      BM = m_warps * m_frags * fm
      threadIdx.y [m_warps, n_warps]                      BN = n_warps * n_frags * fn
        k / BK  (software pipeline of `stages` over: A, B -> shared.dyn, the math)
          A[BM, BK], B[BK, BN] or B^T[BN, BK] -> shared.dyn   (all threads, `vec_*`-wide loads, rows padded by `pad_*`)
          k_frags:  A, B fragments <- shared (wmma.load);  m_frags x n_frags  wmma.mma_sync (fm x fn x 16)
        fragments -> out (wmma.store), or -> shared.dyn -> out (threads along n) when the output is
        not C itself (padded extents, convolution outputs)

Every rule a GPU imposes is a CP-SAT constraint, so each sampled point builds and runs: tiles
divide the padded extents, the fragment shape keeps wmma pointers 256-bit aligned, threads and
warps per block, shared memory per block (the device's opt-in maximum), registers per thread and
per block, cooperative copies that split evenly over the threads, vector widths the operands'
alignment allows, cp.async only on 4-16 byte copies, and a pipeline no deeper than the k loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from heron_core.space import Point, SearchSpace
from heron_core.target import Context
from heron_gpu_tensorcore import intrin, lowering, wgmma
from heron_gpu_tensorcore.device import MAX_REGISTERS_PER_THREAD
from heron_gpu_tensorcore.gemm_view import GemmView, arg_shape, readers, view_of

if TYPE_CHECKING:
    from heron_core.layout import BlockedLayout
    from heron_core.task import Task
    from heron_gpu_tensorcore.target import TensorCoreTarget

WARP_COUNTS = (1, 2, 4, 8)
FRAG_COUNTS = (1, 2, 4, 8)
K_FRAGS = (1, 2, 4, 8)
STAGES = (1, 2, 3, 4)  # 1 = no software pipeline
VECTORS = (1, 2, 4, 8)
PADS = (0, 8, 16)  # shared rows: pitch = the smallest width >= the tile's with pitch % 32 == pad (elements)
BANK_PERIOD = 32  # fp16 elements per 64 bytes: pads are taken modulo this
UNROLL = (0, 16, 64, 256)
RESERVED_REGISTERS = 40  # addresses, loop counters, copy staging: what the fragments leave the kernel
WMMA_ALIGN_BYTES = 32  # wmma load/store pointers must be 256-bit aligned


@dataclass(frozen=True)
class Compute:
    func: object  # tirx.PrimFunc: A_gemm, B_gemm (gathers), C (the GEMM), out (C in the output's layout)
    view: GemmView
    direct: bool


def acc_dtype(task: Task) -> str:
    return task.spec.out_dtype


def b_layout(view: GemmView) -> str:
    """The wmma layout of B's fragments: row-major B[k, n], or col-major when staged as B^T[n, k]."""
    return "row_major" if view.b_layout == "kn" else "col_major"


class TensorCoreContext(Context):
    def __init__(self, target: TensorCoreTarget):
        self.target = target
        self._computes: dict[str, Compute] = {}

    # --- the compute ----------------------------------------------------------------------
    def compute(self, task: Task) -> Compute:
        key = task.spec.model_dump_json()
        if key not in self._computes:
            self._computes[key] = _build_compute(task)
        return self._computes[key]

    # --- the template ---------------------------------------------------------------------
    def uses_wgmma(self, task: Task) -> bool:
        """sm_90a schedules gemm, dense, bmm and the convolutions it can gather with the wgmma template
        (wgmma.py) instead."""
        return self.target.wgmma_capable and wgmma.applies(task.op)

    def _dims(self, task: Task) -> tuple[int, int, int, int]:
        view = view_of(task.op)
        return view.batch, view.M, view.N, view.K

    def define(self, task: Task, space: SearchSpace) -> None:
        if self.uses_wgmma(task):
            wgmma.define(space, task.op.name, self._dims(task), self.target.gpu.max_shared_per_block, _out_bytes(task),
                         self.target.gpu.sm_count, wgmma.gather_of(task.op))
            return
        comp = self.compute(task)
        view, gpu = comp.view, self.target.gpu
        Mp, Np, Kp = view.padded
        acc_bytes = np.dtype(acc_dtype(task)).itemsize
        m = space.model
        frag = space.knob("frag", list(intrin.FRAGMENTS), "wmma fragment (m, n, k): 0 = 16x16x16, 1 = 32x8x16, 2 = 8x32x16")
        fm, fn = space.var(8, 32, "fm"), space.var(8, 32, "fn")
        m.AddElement(frag, [intrin.FRAGMENTS[f][0] for f in intrin.FRAGMENTS], fm)
        m.AddElement(frag, [intrin.FRAGMENTS[f][1] for f in intrin.FRAGMENTS], fn)
        # wmma.load/store need 256-bit aligned pointers; fragments along n start every fn elements
        # of fp16 B and of the accumulator, so fn x element size must be a multiple of 32 bytes
        # (which rules out 32x8x16 for fp16).
        for f, (_, n_frag, _) in intrin.FRAGMENTS.items():
            if (n_frag * min(2, acc_bytes)) % WMMA_ALIGN_BYTES:
                m.Add(frag != f)
        # mma.sync m16n8k16 fed by ldmatrix (PTX, sm_80+) instead of wmma: 16x16x16 tiles in warp
        # registers, each two m16n8k16 instructions. ldmatrix reads 8 rows of 16 bytes per matrix, so
        # shared rows must start 16-byte aligned: pitches are multiples of 8 fp16 (PADS), and a
        # fragment starts every 16 elements along k.
        mma_values = (0, 1) if self.target.mma_capable else (0,)
        mma = space.knob("mma", mma_values, "0 = wmma fragments, 1 = mma.sync m16n8k16 + ldmatrix")
        m.Add(frag == 0).OnlyEnforceIf(space.equals(mma, 1))
        unroll = space.knob("unroll", UNROLL, "auto-unroll max step")
        # TVM's explicit unrolling folds a fragment's offset into the thread's register index
        # ((8 * threadIdx.x + 260) / 256) before LowerWarpMemory splits it, which leaves the
        # accumulators in local memory; left rolled, nvcc unrolls the constant-trip loops itself
        m.Add(unroll == 0).OnlyEnforceIf(space.equals(mma, 1))
        mw = space.knob("m_warps", WARP_COUNTS, "warps along m in a block")
        nw = space.knob("n_warps", WARP_COUNTS, "warps along n in a block")
        mf = space.knob("m_frags", FRAG_COUNTS, "fragments along m per warp")
        nf = space.knob("n_frags", FRAG_COUNTS, "fragments along n per warp")
        kf = space.knob("k_frags", [x for x in K_FRAGS if (Kp // 16) % x == 0], "16-deep k steps per shared-memory stage")
        stages = space.knob("stages", STAGES, "software pipeline depth over the k loop (1 = none)")
        use_async = space.knob("async_copy", (0, 1), "global->shared copies with cp.async (pipelined only)")
        vec_a = space.knob("vec_a", [v for v in VECTORS if v <= view.vec_a], "elements per load of A (16 bytes at 8)")
        vec_b = space.knob("vec_b", [v for v in VECTORS if v <= view.vec_b], "elements per load of B")
        pad_a = space.knob("pad_a", PADS, "shared row pitch of A modulo 32 elements (against bank conflicts)")
        pad_b = space.knob("pad_b", PADS, "shared row pitch of B modulo 32 elements")

        # tiles divide the padded extents; the pipeline is no deeper than the k loop
        bm = space.product([mw, mf, fm], Mp, "block_m")
        bn = space.product([nw, nf, fn], Np, "block_n")
        for tile, extent in ((bm, Mp), (bn, Np)):
            m.AddMultiplicationEquality(extent, [space.var(1, extent), tile])
        k_outer = space.var(1, Kp // 16, "k_outer")
        m.AddMultiplicationEquality(Kp // 16, [k_outer, kf])
        m.Add(stages <= k_outer)

        # threads and warps per block
        warps = space.product([mw, nw], max(WARP_COUNTS) ** 2, "warps")
        threads = space.var(gpu.warp_size, gpu.warp_size * max(WARP_COUNTS) ** 2, "threads")
        m.Add(threads == gpu.warp_size * warps)
        m.Add(threads <= gpu.max_threads_per_block)

        # shared memory per block: A (block_m x pitch) and B (block_k x pitch) per pipeline stage,
        # plus the output tile when it is staged through shared memory
        bk = space.var(16, 16 * max(K_FRAGS), "block_k")
        m.Add(bk == 16 * kf)
        cap = 1 << 30
        stage = space.var(0, cap, "stage_elems")
        b_rows, b_cols = (bk, bn) if view.b_layout == "kn" else (bn, bk)
        a_tile = space.product([bm, _pitch(space, bk, pad_a)], cap)
        m.Add(stage == a_tile + space.product([b_rows, _pitch(space, b_cols, pad_b)], cap))
        smem = space.product([stage, stages], cap, "smem_elems")
        out_tile = 0 if comp.direct else acc_bytes * space.product([bm, bn], cap, "out_tile")
        m.Add(2 * smem + out_tile <= gpu.max_shared_per_block)

        # registers per thread: accumulators (fm x fn / 32 per fragment, 4-byte registers), the A and
        # B fragments of one k step (fp16 pairs), a reserve; and the block within the register file
        acc_regs = space.product([mf, nf], max(FRAG_COUNTS) ** 2, "fragments") * (8 * acc_bytes // 4)
        frag_regs = space.var(0, 1024, "frag_regs")  # (m_frags*fm + n_frags*fn) * 16 halves / 32 lanes / 2 per register
        m.Add(4 * frag_regs == space.product([mf, fm], 256) + space.product([nf, fn], 256))
        regs = space.var(0, 4096, "registers")
        m.Add(regs == acc_regs + frag_regs + RESERVED_REGISTERS)
        m.Add(regs <= MAX_REGISTERS_PER_THREAD)
        m.Add(space.product([regs, threads], 1 << 24) <= gpu.max_registers_per_block)

        # cooperative copies split evenly: each stage's tile is a whole number of threads x vector
        for rows, vec in ((bm, vec_a), (bn, vec_b)):
            elems = space.product([rows, bk], cap)
            m.AddModuloEquality(0, elems, space.product([threads, vec], 1 << 16))

        # cp.async needs a pipeline and copies of 4, 8 or 16 bytes
        m.Add(use_async == 0).OnlyEnforceIf(space.equals(stages, 1))
        m.Add(vec_a >= 2).OnlyEnforceIf(space.equals(use_async, 1))
        m.Add(vec_b >= 2).OnlyEnforceIf(space.equals(use_async, 1))

    def features(self, task: Task, point: Point) -> dict[str, float]:
        if self.uses_wgmma(task):
            cfg = wgmma.config_of(point, wgmma.gather_of(task.op))
            return wgmma.features(cfg, self._dims(task), self.target.gpu.sm_count, _out_bytes(task))
        view = self.compute(task).view
        Mp, Np, Kp = view.padded
        fm, fn, _ = intrin.FRAGMENTS[point["frag"]]
        bm, bn, bk = point["m_warps"] * point["m_frags"] * fm, point["n_warps"] * point["n_frags"] * fn, 16 * point["k_frags"]
        return {
            "block_m": bm,
            "block_n": bn,
            "block_k": bk,
            "warps": point["m_warps"] * point["n_warps"],
            "blocks": view.batch * (Mp // bm) * (Np // bn),
            "waves": view.batch * (Mp // bm) * (Np // bn) / self.target.gpu.sm_count,
            "warp_tile": point["m_frags"] * fm * point["n_frags"] * fn,
            "smem_bytes": _smem_bytes(self.compute(task), task, point),
            "intensity": bm * bn / (bm + bn),
        }

    def arg_layouts(self, task: Task) -> dict[str, BlockedLayout]:
        if self.uses_wgmma(task) and wgmma.gather_of(task.op) is None:
            return {}
        return view_of(task.op).layouts

    def tolerance(self, task: Task) -> tuple[float, float]:
        """fp16 accumulation rounds every partial sum to 11 bits: allow 4% of the sums' typical
        size (sqrt(K) for the unit-normal inputs the runner uses; a wrong index errs by ~100%);
        fp32 accumulation is held to the core's default, scaled the same way; the wgmma kernels
        accumulate in fp32 and round a 16-bit output once (bf16: 8 bits, 2%)."""
        k = view_of(task.op).K
        scale = float(np.sqrt(k))
        if self.uses_wgmma(task):
            return (1e-3, 1e-3 * scale) if task.spec.out_dtype == "float32" else (2e-2, 2e-2 * scale)
        return (1e-2, 4e-2 * scale) if acc_dtype(task) == "float16" else (1e-3, 1e-3 * scale)

    def apply(self, task: Task, point: Point):
        if self.uses_wgmma(task):
            import tvm

            batch, M, N, K = self._dims(task)
            spec = task.spec
            gather = wgmma.gather_of(task.op)
            if gather is not None:
                layouts = self.arg_layouts(task)
                shapes = (*(arg_shape(t, layouts) for t in task.op.inputs), task.op.output.shape)
                func = wgmma.conv_prim_func(task.op, wgmma.config_of(point, gather), spec.in_dtype, spec.out_dtype, shapes,
                                            self.target.gpu.sm_count)  # fmt: skip
                lowering.install()
                return lowering.mark_tirx(tvm.IRModule({"main": func}))
            func = wgmma.prim_func(task.op, wgmma.config_of(point), spec.in_dtype, spec.out_dtype, batch, M, N, K,
                                   task.op.name == "dense", self.target.gpu.sm_count)  # fmt: skip
            lowering.install()
            return lowering.mark_tirx(tvm.IRModule({"main": func}))
        return schedule(self.compute(task), task, point)


def _out_bytes(task: Task) -> int:
    return 4 if task.spec.out_dtype == "float32" else 2


def _pitch(space: SearchSpace, width, pad):
    """The padded row pitch: the smallest p >= width with p % 32 == pad (storage_align)."""
    q = space.var(0, 1 << 20)
    p = space.var(1, 1 << 25)
    space.model.Add(p == BANK_PERIOD * q + pad)
    space.model.Add(p >= width)
    space.model.Add(p < width + BANK_PERIOD)
    return p


def pitch(width: int, pad: int) -> int:
    p = width - width % BANK_PERIOD + pad
    return p if p >= width else p + BANK_PERIOD


def _smem_bytes(comp: Compute, task: Task, point: Point) -> int:
    fm, fn, _ = intrin.FRAGMENTS[point["frag"]]
    bm, bn, bk = point["m_warps"] * point["m_frags"] * fm, point["n_warps"] * point["n_frags"] * fn, 16 * point["k_frags"]
    b_tile = bk * pitch(bn, point["pad_b"]) if comp.view.b_layout == "kn" else bn * pitch(bk, point["pad_b"])
    per_stage = bm * pitch(bk, point["pad_a"]) + b_tile
    out = 0 if comp.direct else bm * bn * np.dtype(acc_dtype(task)).itemsize
    return 2 * per_stage * point["stages"] + out


def _build_compute(task: Task) -> Compute:
    from tvm import te, tirx

    op = task.op
    view = view_of(op)
    Mp, Np, Kp = view.padded
    acc = acc_dtype(task)
    args = {t.name: te.placeholder(arg_shape(t, view.layouts), t.dtype, name=t.name) for t in op.inputs}
    read = readers(op, args, view.layouts)

    def guarded(value, conds):
        conds = [c for c, needed in conds if needed]
        value = value.astype("float16")
        return tirx.if_then_else(tirx.all(*conds), value, tirx.const(0, "float16")) if conds else value

    a = te.compute(
        (view.batch, Mp, Kp),
        lambda b, i, k: guarded(view.a(read, b, i, k), [(i < view.M, Mp > view.M), (k < view.K, Kp > view.K)]),
        name="A_gemm",
    )
    def b_elem(bb, k, j):
        return guarded(view.b(read, bb, k, j), [(k < view.K, Kp > view.K), (j < view.N, Np > view.N)])

    if view.b_layout == "kn":
        b = te.compute((view.batch, Kp, Np), b_elem, name="B_gemm")
    else:
        b = te.compute((view.batch, Np, Kp), lambda bb, j, k: b_elem(bb, k, j), name="B_gemm")
    k = te.reduce_axis((0, Kp), name="k")

    def b_at(bb, k, j):
        return b[bb, k, j] if view.b_layout == "kn" else b[bb, j, k]

    c = te.compute(
        (view.batch, Mp, Np), lambda bb, i, j: te.sum(a[bb, i, k].astype(acc) * b_at(bb, k, j).astype(acc), axis=k), name="C"
    )
    out = te.compute(op.output.shape, lambda *idx: c[view.out(*idx)].astype(op.output.dtype), name="out")
    func = te.create_prim_func([*args.values(), out]).with_attr("tirx.noalias", True)
    return Compute(func, view, view.direct and not view.needs_padding)


def schedule(comp: Compute, task: Task, point: Point):
    """The template instantiated for ``point``: a scheduled IRModule."""
    import tvm
    from tvm import s_tir

    p = point
    fm, fn, fk = intrin.FRAGMENTS[p["frag"]]
    acc = acc_dtype(task)
    layout = b_layout(comp.view)
    warps = p["m_warps"] * p["n_warps"]
    sch = s_tir.Schedule(tvm.IRModule({"main": comp.func}))
    gemm = sch.get_sblock("C")
    b, i, j, k = sch.get_loops(gemm)
    i0, i1, i2, i3 = sch.split(i, [None, p["m_warps"], p["m_frags"], fm])
    j0, j1, j2, j3 = sch.split(j, [None, p["n_warps"], p["n_frags"], fn])
    k0, k1, k2 = sch.split(k, [None, p["k_frags"], fk])
    sch.reorder(b, i0, j0, i1, j1, k0, k1, i2, j2, i3, j3, k2)
    tile = sch.blockize(i3)
    bx = sch.fuse(b, i0, j0)
    sch.bind(bx, "blockIdx.x")
    ty = sch.fuse(i1, j1)
    sch.bind(ty, "threadIdx.y")
    depth = len(sch.get_loops(tile)) - 3  # the loops around k0's body: bx, ty, k0

    def to_shared(index: int, vec: int, pad: int):
        c = sch.cache_read(tile, index, intrin.SHARED)
        sch.compute_at(c, k0)
        fused = sch.fuse(*sch.get_loops(c)[depth:])
        _, f_ty, f_tx, f_vec = sch.split(fused, [None, warps, 32, vec])
        sch.bind(f_ty, "threadIdx.y")
        sch.bind(f_tx, "threadIdx.x")
        if vec > 1:
            sch.vectorize(f_vec)
        if pad:
            sch.storage_align(c, 0, axis=-2, factor=BANK_PERIOD, offset=pad)

    to_shared(0, p["vec_a"], p["pad_a"])
    to_shared(1, p["vec_b"], p["pad_b"])
    sch.compute_inline(sch.get_sblock("A_gemm"))
    sch.compute_inline(sch.get_sblock("B_gemm"))

    use_mma = bool(p.get("mma", 0))
    a_frag = sch.cache_read(tile, 0, "warp" if use_mma else "wmma.matrix_a")
    b_frag = sch.cache_read(tile, 1, "warp" if use_mma else "wmma.matrix_b")
    sch.compute_at(a_frag, k1)
    sch.compute_at(b_frag, k1)
    store = sch.cache_write(tile, 0, "warp" if use_mma else "wmma.accumulator")
    if comp.direct:
        sch.reverse_compute_inline(sch.get_sblock("out"))
    sch.reverse_compute_at(store, ty)
    if not comp.direct:
        sch.set_scope(store, 0, intrin.SHARED)
        out = sch.get_sblock("out")
        if _regroups_output(comp.view, task.op.output.shape):
            # iterate the output copy over C's (b, m, n) rather than the output's own axes, so the
            # region a block tile covers is a rectangle, not a bounding box of pixel rows
            index_map = tvm.tirx.IndexMap.from_func(lambda *i: _exprs(comp.view.out(*i)), ndim=len(task.op.output.shape))
            sch.transform_block_layout(out, index_map)
        sch.reverse_compute_at(out, bx)
        fused = sch.fuse(*sch.get_loops(out)[1:])
        _, o_ty, o_tx = sch.split(fused, [None, warps, 32])
        sch.bind(o_ty, "threadIdx.y")
        sch.bind(o_tx, "threadIdx.x")

    def tiles_of(block, rows: int, cols: int):
        r, c = sch.get_loops(block)[-2:]
        ro, ri = sch.split(r, [None, rows])
        co, ci = sch.split(c, [None, cols])
        sch.reorder(ro, co, ri, ci)
        return ri

    init = sch.decompose_reduction(tile, k0)
    if use_mma:
        _tensorize_mma(sch, comp, tile, init, a_frag, b_frag, store, acc, layout, tiles_of)
    else:
        _tensorize_wmma(sch, comp, tile, init, a_frag, b_frag, store, acc, layout, tiles_of, (fm, fn, fk))

    if p["stages"] > 1:
        sch.annotate(k0, "software_pipeline_stage", [0, 0, p["stages"] - 1])
        sch.annotate(k0, "software_pipeline_order", [0, 1, 2])
        if p["async_copy"]:
            sch.annotate(k0, "software_pipeline_async_stages", [0])
    if p["unroll"]:
        sch.annotate(bx, "pragma_auto_unroll_max_step", p["unroll"])
        sch.annotate(bx, "pragma_unroll_explicit", 1)
    if use_mma:
        lowering.install()
        return lowering.mark(sch.mod)
    return sch.mod


def _tensorize_wmma(sch, comp, tile, init, a_frag, b_frag, store, acc, layout, tiles_of, frag) -> None:
    fm, fn, fk = frag
    sch.tensorize(tiles_of(a_frag, fm, fk), intrin.load(fm, fn, fk, "a"))
    sch.tensorize(tiles_of(b_frag, *intrin.b_shape(fn, fk, layout)), intrin.load(fm, fn, fk, "b", layout))
    sch.tensorize(sch.get_loops(sch.get_child_blocks(init)[0])[-2], intrin.fill(fm, fn, fk, acc))
    sch.tensorize(tiles_of(store, fm, fn), intrin.store(fm, fn, fk, acc, "global" if comp.direct else intrin.SHARED))
    sch.tensorize(sch.get_loops(_gemm_inner(sch, tile))[-3], intrin.mma(fm, fn, fk, acc, layout))


def _tensorize_mma(sch, comp, tile, init, a_frag, b_frag, store, acc, layout, tiles_of) -> None:
    """Warp-scope operand and accumulator buffers take mma.sync's register layout (b, rows/16,
    cols/16, thread, register); loads become ldmatrix.x4, each 16x16x16 step two m16n8k16."""
    loop_a = tiles_of(a_frag, 16, 16)
    loop_b = tiles_of(b_frag, 16, 16)
    loop_c = tiles_of(store, 16, 16)
    sch.transform_layout(a_frag, ("write", 0), intrin.warp_tile_map)
    sch.transform_layout(b_frag, ("write", 0), intrin.warp_tile_map)
    sch.transform_layout(store, ("read", 0), intrin.warp_tile_map)
    sch.tensorize(loop_a, intrin.ldmatrix("a"))
    sch.tensorize(loop_b, intrin.ldmatrix("b", layout))
    sch.tensorize(sch.get_loops(sch.get_child_blocks(init)[0])[-2], intrin.mma_fill(acc))
    sch.tensorize(loop_c, intrin.mma_store(acc, "global" if comp.direct else intrin.SHARED))
    sch.tensorize(sch.get_loops(_gemm_inner(sch, tile))[-3], intrin.mma_sync(acc, layout))


def _regroups_output(view: GemmView, shape: tuple[int, ...]) -> bool:
    """Whether output elements map onto C[b, m, n] other than axis by axis (convolutions: the
    images and pixels of the output are C's n)."""
    return len(shape) > 3 or (len(shape) == 3 and view.batch != shape[0])


def _exprs(index: tuple) -> list:
    from tvm import tirx

    return [tirx.const(i, "int32") if isinstance(i, int) else i for i in index]


def _gemm_inner(sch, tile):
    """The 16x16x16-element block inside the blockized GEMM tile (the mma_sync candidate)."""
    return sch.get_child_blocks(tile)[0]
