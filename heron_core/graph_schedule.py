"""CPU schedules for the PrimFuncs of a Relax model that do not run Heron's kernels.

TVM 0.27's CPU pipeline fuses the graph (FuseOps, FuseTIR) but leaves every PrimFunc unscheduled:
one scalar loop nest per block. ``pipeline`` (what `heron build` compiles with) is that pipeline with
TVM's FastMathTransform first and DLight's ApplyDefaultSchedule after fusion, with these rules,
first match wins:

- DLight's ``GEMV`` (a matrix times a vector, e.g. an untuned classifier at batch 1).
- ``Matmul``: a (batched) matmul-like block, e.g. BERT's attention products between two
  activations. Normalized to C[S, I, J] += A[S, I, K] * B[S, J, K] as DLight's GPU rule does, then a
  register tile of ``TILE_I`` rows x ``TILE_J`` vector lanes accumulated in a local buffer over K;
  the tiles run in parallel; injective consumers (bias, quantize, ...) follow each tile.
- ``RowReduction``: row reductions over the last axis (softmax, layer norm): cheap injective blocks
  inlined, the rows in parallel with every block computed per row; each reduction split into vector
  lanes and rfactored (the lanes accumulate in a vector, one horizontal step per row), the
  injective parts vectorized.
- DLight's ``Reduction`` (other reductions: parallel rows, vectorized injective parts).
- ``Injective``: every block element-wise/injective (Q/DQ chains, residual adds, pads,
  transposes): all inlined into the last block, its loops fused, split into parallel chunks
  with a vectorized innermost part.
- ``ParallelSpatial``: anything else (pools, means): its leading spatial loops fused and run in
  parallel, inner injective blocks vectorized.
"""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir import dlight as dl
from tvm.s_tir.dlight.analysis import normalize_prim_func
from tvm.s_tir.dlight.analysis.common_analysis import get_root_block
from tvm.s_tir.dlight.base import get_extent
from tvm.target import Target

TILE_I = 4  # rows of the matmul register tile
TILE_J = 32  # columns: two AVX-512 vectors of float32
CHUNK = 4096  # elements of an injective loop per parallel task


def _vector_lanes(target: Target, bits: int = 32) -> int:
    from tvm.target.codegen import llvm_get_vector_width

    width = llvm_get_vector_width(target)
    return max((width if width > 0 else 128) // bits, 2)


def _vector_width(extent, lanes: int) -> int:
    """The widest power-of-two part of ``lanes`` that divides ``extent`` (no tail to predicate); 1: none."""
    if not isinstance(extent, int):
        return 1
    width = lanes
    while width > 1 and extent % width:
        width //= 2
    return width


def _vectorize_inner(sch: s_tir.Schedule, block, lanes: int) -> None:
    loops = sch.get_loops(block)
    width = _vector_width(get_extent(sch, loops[-1]), lanes) if loops else 1
    if width > 1:
        _, inner = sch.split(loops[-1], [None, width])
        sch.vectorize(inner)


def _normalized(func):
    """A schedule of ``func`` and its blocks' infos (DLight's normalization), or None: not a PrimFunc, no blocks."""
    if not isinstance(func, tirx.PrimFunc):
        return None
    sch = s_tir.Schedule(func)
    infos = normalize_prim_func(sch)
    return (sch, infos) if infos else None


class Injective(dl.ScheduleRule):
    def apply(self, func, target: Target, _: bool):
        if (normalized := _normalized(func)) is None:
            return None
        sch, infos = normalized
        if not all(b.is_injective() for b in infos):
            return None
        infos = dl.try_inline(sch, infos)
        lanes = _vector_lanes(target)
        for info in infos:
            loops = sch.get_loops(info.block_rv)
            if not loops:
                continue
            _parallel_vectorized(sch, sch.fuse(*loops), lanes)
        return sch


class ParallelSpatial(dl.ScheduleRule):
    def apply(self, func, target: Target, _: bool):
        if (normalized := _normalized(func)) is None:
            return None
        sch, infos = normalized
        lanes = _vector_lanes(target)  # nothing inlined: a pad inlined into a convolution costs a branch per MAC
        for info in infos:
            kinds = info.dom_kind()
            loops = sch.get_loops(info.block_rv)
            lead = len(kinds) - len(kinds.lstrip("S"))
            if info.is_injective():
                _vectorize_inner(sch, info.block_rv, lanes)
            if lead and len(loops) == len(kinds):
                sch.parallel(sch.fuse(*loops[:lead]) if lead > 1 else loops[0])
        return sch


class Matmul(dl.ScheduleRule):
    def apply(self, func, target: Target, _: bool):
        from tvm.s_tir.dlight.gpu.matmul import get_index_map, get_reduction_blocks

        if not isinstance(func, tirx.PrimFunc):
            return None
        sch = s_tir.Schedule(func)
        reductions = get_reduction_blocks(sch, sch.get_child_blocks(get_root_block(sch)))
        if reductions is None or len(reductions) != 1:
            return None
        main = reductions[0]
        if get_index_map(sch.get(main)) is None:
            return None
        try:
            return self._schedule(sch, main, target)
        except s_tir.ScheduleError:
            return None

    @staticmethod
    def _schedule(sch: s_tir.Schedule, main, target: Target):
        from tvm.s_tir.dlight.gpu.matmul import get_index_map

        reindex_a = sch.reindex(main, ("read", 0))
        reindex_b = sch.reindex(main, ("read", 1))
        reindex_c = sch.reindex(main, ("write", 0))
        matmul_map, a_map, b_map, c_map = get_index_map(sch.get(main))
        sch.transform_layout(reindex_a, ("write", 0), a_map)
        sch.transform_layout(reindex_b, ("write", 0), b_map)
        sch.transform_layout(reindex_c, ("read", 0), c_map)
        sch.transform_block_layout(main, matmul_map)
        lanes = _vector_lanes(target)
        sch.pad_einsum(main, [1, TILE_I, TILE_J, 1])
        batch, i, j, k = sch.get_loops(main)
        io, ii = sch.split(i, [None, TILE_I])
        jo, ji = sch.split(j, [None, TILE_J])
        sch.reorder(batch, io, jo, k, ii, ji)
        outer = sch.fuse(batch, io, jo)
        sch.parallel(outer)
        # producers (the reindex copies, padding, dequantize) are read in place
        for block in sch.get_producers(main):
            _inline_producers(sch, block)
        acc = sch.cache_write(main, 0, "local")
        sch.reverse_compute_at(acc, outer, preserve_unit_loops=True)
        consumers = sch.get_consumers(acc)
        while consumers:
            block = consumers[0]
            try:
                sch.reverse_compute_inline(block)
            except s_tir.ScheduleError:
                sch.reverse_compute_at(block, outer, preserve_unit_loops=True)
                _vectorize_inner(sch, block, lanes)
                break
            consumers = sch.get_consumers(acc)
        _vectorize_inner(sch, acc, lanes)
        sch.unroll(ii)
        _, jv = sch.split(ji, [None, lanes])
        sch.vectorize(jv)  # before decompose_reduction: TVM vectorizes a reduction block, not its update part
        sch.decompose_reduction(main, k)
        for block in sch.get_child_blocks(get_root_block(sch)):
            if not sch.get_loops(block):
                continue
            if sch.get(block).name_hint.endswith("_pad") or "reindex" in sch.get(block).name_hint:
                _parallel_injective(sch, block, lanes)
        return sch


def _inline_producers(sch: s_tir.Schedule, block) -> None:
    for producer in sch.get_producers(block):
        _inline_producers(sch, producer)
    try:
        sch.compute_inline(block)
    except s_tir.ScheduleError:
        pass


def _parallel_injective(sch: s_tir.Schedule, block, lanes: int) -> None:
    loops = sch.get_loops(block)
    if sch.get(loops[0]).kind != tirx.ForKind.SERIAL:
        return
    _parallel_vectorized(sch, sch.fuse(*loops), lanes)


def _parallel_vectorized(sch: s_tir.Schedule, loop, lanes: int) -> None:
    """``loop`` split into parallel chunks of about CHUNK elements, the innermost vector part of a
    width that divides its extent (no tail to predicate)."""
    extent = get_extent(sch, loop)
    if not isinstance(extent, int):
        return
    width = _vector_width(extent, lanes)
    if width > 1:
        loop, inner = sch.split(loop, [None, width])
        sch.vectorize(inner)
    if extent > CHUNK:
        loop, _ = sch.split(loop, [None, CHUNK // width])
    sch.parallel(loop)


CHEAP = 400  # characters of TVMScript up to which an injective block is recomputed in each consumer:
# a dequantize or a mean is ~150, TVM's fast exp ~4000 (this TVM has no Python TIR visitor to count nodes)


def _expression_size(sch: s_tir.Schedule, block) -> int:
    return len(str(sch.get(block).body))


class RowReduction(dl.ScheduleRule):
    def apply(self, func, target: Target, _: bool):
        if (normalized := _normalized(func)) is None:
            return None
        sch, infos = normalized
        if all(b.is_injective() for b in infos):
            return None
        kinds = [b.dom_kind() for b in infos if not b.is_injective()]
        rows = len(kinds[0]) - 1
        if rows < 1 or any(k != "S" * rows + "R" for k in kinds):
            return None
        try:
            return self._schedule(sch, rows, _vector_lanes(target))
        except s_tir.ScheduleError:
            return None

    @staticmethod
    def _schedule(sch: s_tir.Schedule, rows: int, lanes: int):
        root = get_root_block(sch)
        for block in sch.get_child_blocks(root)[:-1]:
            if _is_spatial(sch, block) and (
                len(sch.get_consumers(block)) <= 1 or _expression_size(sch, block) <= CHEAP
            ):
                try:
                    sch.compute_inline(block)
                except s_tir.ScheduleError:
                    pass
        partials = []  # rfactor first: it needs the reduction's loops to itself
        for block in sch.get_child_blocks(root):
            loops = sch.get_loops(block)
            width = _vector_width(get_extent(sch, loops[-1]), lanes) if loops else 1
            if _is_spatial(sch, block) or width == 1:
                continue
            _, lane = sch.split(loops[-1], [None, width])
            partials.append(sch.rfactor(lane, factor_axis=rows))
        blocks = sch.get_child_blocks(root)
        loops = sch.get_loops(blocks[-1])
        if len(loops) < rows or not _is_spatial(sch, blocks[-1]):
            return None
        row = sch.fuse(*loops[:rows]) if rows > 1 else loops[0]
        sch.parallel(row)
        for block in reversed(blocks[:-1]):
            sch.compute_at(block, row, preserve_unit_loops=True)
        for block in sch.get_child_blocks(root):
            if len(sch.get_loops(block)) > 1 and _is_spatial(sch, block):
                _vectorize_inner(sch, block, lanes)
        for partial in partials:
            loops = sch.get_loops(partial)  # row, then one per iterator: rfactor puts the lane first, k is last
            lane, k = loops[1], loops[-1]
            sch.reorder(k, lane)
            sch.vectorize(lane)  # before decompose_reduction, as in Matmul
            sch.decompose_reduction(partial, k)
        return sch


def _is_spatial(sch: s_tir.Schedule, block) -> bool:
    return all(v.iter_type == tirx.IterVar.DataPar for v in sch.get(block).iter_vars)


RULES = (dl.cpu.GEMV(), Matmul(), RowReduction(), dl.cpu.Reduction(), Injective(), ParallelSpatial())


def rules_applied(mod, target: Target) -> dict[str, dl.ScheduleRule]:
    """Which rule schedules each PrimFunc of ``mod`` (after FuseTIR); functions no rule takes are left out."""
    chosen = {}
    with target:
        for gv, func in mod.functions_items():
            if isinstance(func, tirx.PrimFunc):
                rule = next((r for r in RULES if r.apply(func, target, False) is not None), None)
                if rule is not None:
                    chosen[gv.name_hint] = rule
    return chosen


def pipeline(target: Target):
    """TVM's CPU Relax pipeline, FastMathTransform first, ``RULES`` after fusion (a ``tvm.compile`` pipeline)."""
    import tvm
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    # exp, erf, tanh and softmax as TVM's polynomial approximations (relative error about 1e-6, far below an
    # int8 step): they vectorize, where LLVM calls libm once per element
    passes = [tvm.relax.transform.FastMathTransform()]
    passes += cpu.library_dispatch_passes(target) + cpu.legalize_passes(target)
    passes.append(dl.ApplyDefaultSchedule(*RULES))
    passes += cpu.dataflow_lower_passes(target) + cpu.finalize_passes(target)

    @tvm.transform.module_pass(opt_level=0, name="HeronRelaxPipeline")
    def _run(mod, _ctx):
        with target:
            return tvm.transform.Sequential(passes)(mod)

    return _run
