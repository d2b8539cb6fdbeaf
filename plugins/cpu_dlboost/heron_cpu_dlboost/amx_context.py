"""AMXContext: the Intel AMX schedule template and its rules.

It is the dlboost template (``CPUContext``: operand packing stages, recorded operand uses,
footprints, parallel rule) with AMX tiles in place of the 16x4 VNNI block:

- the weight is packed VNNI-style, pairs of 4 (int8) or 2 (bf16) reduction elements per lane, with
  the operator's other dimensions first: (*others, lanes/16, K/g, 16, g), so that one K step of a
  lane block is ``tk`` rows of 64 contiguous bytes (an AMX B tile);
- the data operand is laid out with its reduction dimension innermost (NCHW -> N,H+2p,W+2p,C,
  padding included), so that an A tile is ``rows`` output positions x ``4*tk`` contiguous bytes;
- an accumulator tile is ``rows`` x 16 (s32 or f32); an output whose lanes are not innermost
  (NKPQ) is accumulated in a cache laid out with the lanes innermost (N,P,Q,K).

Loop structure of the compute block (S = spatial axes, R = reduction axes):

    [S0 fused, parallel] [S1] [R0] [S2] [R1 except the dot axis] [kc: R1 of the dot axis
      [mt: S3 of the row axis] [nt: S3 of the lane axis] [rows] [16 lanes] [tk*g]]  <- one AMX call

The bracketed nest is one micro-kernel call (amx_intrin): ``mt`` x ``nt`` accumulator tiles
loaded from the accumulator, ``kc`` K steps of tile loads and ``tdpbusd``/``tdpbf16ps``, stored
back. Rules (CP-SAT): tile factors multiply to the extents; accumulators + A + B tiles fit the 8
tile registers; 2x2 accumulators and 8 K steps per call where the shape allows
(a call's fixed cost: tile configuration, accumulator load and store); the operands of one
call fit L1d, or at least the operand that the innermost S2 loop reuses does (the other streams
from L2), or the call covers the whole reduction (``acc_zero``: both operands may stream from L2);
those of one S2 x R1 block plus its output tile fit L2; the parallel loop splits evenly
or into many chunks.

brgemm-style points (increment 5): ``acc_zero`` = 1 makes one call cover all of K (R0 = 1): its
accumulators start with ``tilezero`` instead of a load of C, and the reduction's init block is
tensorized as nothing (no zeroing pass over the output, no load of C; brgemm with beta = 0).
``a_cache`` = 2 copies the A rows of each S1 row tile, all of K, once, at the S1 row loop (before
the S1 lane loop, so ``lane_first_1`` = 0): an A panel kept in L2 and reused across all of N;
``a_cache`` = 3 is the same panel packed tile by tile (each 16 x 64-byte A tile contiguous). The
panel must fit L2 next to one S2 x R1 block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from heron_core.layout import BlockedLayout
from heron_core.operator import numpy_dtype
from heron_core.space import Point, SearchSpace, divisors
from heron_cpu_dlboost import amx_intrin
from heron_cpu_dlboost.context import (
    REDUCE_LEVELS,
    SPATIAL_LEVELS,
    Axis,
    CPUContext,
    Layout,
    _cap,
    _parallel_stage,
    _quantities,
    _row_axis,
    _tile_factors,
    _vectorize_innermost,
    max_divisor,
    padded_extent,
    parallel_rule,
    prefer,
)

if TYPE_CHECKING:
    from heron_core.task import Task
    from heron_cpu_dlboost.amx_target import AMXTarget

MIN_ACCUMULATORS = 4  # 2x2: one tile load per tile product (1x2: 1.5, 1x1: 2), what L1 can feed
MIN_K_STEPS = 8  # 2x2 x 8 steps: 32 tile products per accumulator load and store
MIN_S2_CALLS = 4  # micro-kernel calls per S2 block (L1 reuse of a K block across calls)
STREAM_BYTES = 4096  # L1 left for the streamed operand's tiles when only the reused operand's K block is kept there


def kind_of(in_dtype: str) -> str:
    return "bfloat16" if in_dtype == "bfloat16" else "int8"


@dataclass(frozen=True)
class AMXLayout(Layout):
    """The compute's axes in AMX units: the row axis in tiles of ``rows``, the lane axis in 16s,
    the dot axis in K steps of ``tk`` 4-byte groups (``g`` elements each)."""

    row: str
    lane: str
    dot: str
    rows: int
    tk: int
    g: int


@dataclass(frozen=True)
class ChannelsLast:
    """(..., R, ...) -> (..., ..., R): the reduction dimension innermost, whole (A tile rows are contiguous)."""

    logical_shape: tuple[int, ...]
    reduce_dim: int

    @property
    def shape(self) -> tuple[int, ...]:
        s = list(self.logical_shape)
        return (*s[: self.reduce_dim], *s[self.reduce_dim + 1 :], s[self.reduce_dim])

    def packed(self, idx):
        return (*idx[: self.reduce_dim], *idx[self.reduce_dim + 1 :], idx[self.reduce_dim])

    def logical(self, p):
        return [*p[: self.reduce_dim], p[-1], *p[self.reduce_dim : -1]]


class AMXContext(CPUContext):
    def __init__(self, target: AMXTarget):
        super().__init__(target)
        self._steps: dict[str, int] = {}

    # --- layouts (the CPUContext builds the compute on them) -----------------------------
    def weight_blocking(self, task: Task) -> BlockedLayout:
        hint = task.op.dot_hint
        g = amx_intrin.DTYPES[kind_of(task.spec.in_dtype)][3]
        return BlockedLayout(
            reduce_dim=hint.weight_reduce_dim, lane_dim=hint.weight_lane_dim, lanes=amx_intrin.LANES, reduce=g, others_first=True
        )

    def data_layout(self, shape: tuple[int, ...], reduce_dim: int) -> ChannelsLast:
        return ChannelsLast(shape, reduce_dim)

    def layout_of(self, task: Task, out, read: dict) -> AMXLayout:
        hint = task.op.dot_hint
        g = amx_intrin.DTYPES[kind_of(task.spec.in_dtype)][3]
        spatial = list(out.op.axis)
        data_uses = read[hint.data].used
        row_i = _row_axis(task, out, data_uses)
        if row_i is None:
            from heron_core.errors import ConfigError

            raise ConfigError(f"{task.op.name}: the AMX template needs an output axis that runs along the rows of '{hint.data}'")
        row_extent = int(spatial[row_i].dom.extent)
        rows = max_divisor(row_extent, amx_intrin.MAX_ROWS)
        dot_extent = int(out.op.reduce_axis[hint.reduce_axis].dom.extent)
        tk = max_divisor(dot_extent // g, amx_intrin.ROW_BYTES // 4)
        axes = []
        for i, iv in enumerate(spatial):
            inner = amx_intrin.LANES if i == hint.out_lane_axis else rows if i == row_i else 1
            axes.append(Axis(iv.var.name, int(iv.dom.extent) // inner, inner, True))
        for i, iv in enumerate(out.op.reduce_axis):
            inner = tk * g if i == hint.reduce_axis else 1
            axes.append(Axis(iv.var.name, int(iv.dom.extent) // inner, inner, False))
        names = {a.name for a in axes}
        itemsize = {t.name: numpy_dtype(t.dtype).itemsize for t in task.op.tensors() if t.role != "output"}
        return AMXLayout(
            tuple(axes),
            {n: frozenset(fn.used & names) for n, fn in read.items()},
            itemsize,
            row=spatial[row_i].var.name,
            lane=spatial[hint.out_lane_axis].var.name,
            dot=out.op.reduce_axis[hint.reduce_axis].var.name,
            rows=rows,
            tk=tk,
            g=g,
        )

    def row_extents(self, n: int) -> tuple[int, ...]:
        """The row axis padded, within bounded waste, so that A tiles have many rows (16 at best); at least 2
        (a tile nest whose every row loop has extent 1 does not match the registered tile intrinsics). One extent:
        the AMX template has no ``row_extent`` knob (its A tile's row count follows from the extent)."""
        return (max(2, padded_extent(n, lambda e: max_divisor(e, amx_intrin.MAX_ROWS) / amx_intrin.MAX_ROWS)),)

    def row_step(self, task: Task) -> int:
        """How far apart (in rows of the data operand's packed layout) consecutive output rows read:
        the convolution stride, 1 for matrix products."""
        key = task.spec.model_dump_json()
        if key not in self._steps:
            import tvm
            from tvm import s_tir
            from tvm.sym.pattern import detect_linear_equation

            compute, lay = self.compute(task), self.layout(task)
            hint = task.op.dot_hint
            sch = s_tir.Schedule(tvm.IRModule({"main": compute.func}))
            block = sch.get(sch.get_sblock(compute.out.op.name))
            row_var = next(iv.var for iv in block.iter_vars if iv.var.name == f"v_{lay.row}")
            region = next(r for r in block.reads if r.source.name in (hint.data, f"{hint.data}_pack"))
            coef = detect_linear_equation(region.region[-2].min, [row_var])
            if len(coef) != 2 or not isinstance(coef[0], tvm.tirx.IntImm) or int(coef[0]) < 1:
                raise ValueError(f"{task.op.name}: rows of '{hint.data}' are not an affine function of {lay.row}")
            self._steps[key] = int(coef[0])
        return self._steps[key]

    # --- the template --------------------------------------------------------------------
    def define(self, task: Task, space: SearchSpace) -> None:
        lay: AMXLayout = self.layout(task)
        m = space.model
        tiles = {}
        for ax in lay.axes:
            kind = "spatial" if ax.spatial else "reduction"
            tiles[ax.name] = space.split(ax.name, ax.extent, ax.levels, f"{kind} tile factors of {ax.name} (outer to inner)")
            if ax.spatial and ax.name not in (lay.row, lay.lane):
                m.Add(tiles[ax.name][SPATIAL_LEVELS - 1] == 1)  # S3 is the tile grid: rows x lanes only
        acc_levels = (0, 1, 2) if self.may_accumulate_in_output(task) else (0, 1)
        space.knob(
            "acc_level",
            acc_levels,
            "accumulate in a cache written back after the parallel loop (0), after each S1 tile (1), or in the output (2)",
        )
        lane_first = {
            level: space.knob(f"lane_first_{level}", (0, 1), f"the lane axis outermost among the S{level} loops")
            for level in (1, 2)
        }
        a_levels = (0,)
        if self._data_in_place(task):
            a_levels = (0, 1, 2, 3) if self._row_before_lane(lay) else (0, 1)
        a_cache = space.knob(
            "a_cache",
            a_levels,
            "read the data operand in place (0), copy the data block of each S1 x R0 iteration into a contiguous "
            "buffer (1), or copy the rows of each S1 row tile, all of K, once, ahead of the S1 lane loop and the K "
            "blocks (2: A packed once and reused across N, as a GotoBLAS / brgemm A panel kept in L2; 3: the same "
            "panel packed tile by tile, each A tile 16 rows x 64 bytes contiguous)",
        )
        # acc_zero: one call covers the whole reduction (the dot axis in one K block, no other reduction loop), so
        # its accumulators start at zero in the tiles (tilezero) and are only stored: no load of C, no zeroing pass
        # (brgemm with beta = 0, accumulators resident over all of K).
        whole_k = all(a.extent == 1 for a in lay.axes if not a.spatial and a.name != lay.dot)
        acc_zero = space.knob(
            "acc_zero",
            (0, 1) if whole_k else (0,),
            "the micro-kernel covers the whole reduction and starts its accumulators at zero (1; K in one block) "
            "or loads and stores them around each K block (0)",
        )
        if whole_k:
            m.Add(tiles[lay.dot][0] == 1).OnlyEnforceIf(acc_zero)
        q = _quantities(lay, tiles, lambda xs: space.product(xs, _cap(lay)))
        row, lane, dot = (next(a for a in lay.axes if a.name == n) for n in (lay.row, lay.lane, lay.dot))
        mt, nt, kc = tiles[lay.row][3], tiles[lay.lane][3], tiles[lay.dot][1]

        # Tile registers: mt x nt accumulators, mt A tiles, nt B tiles.
        acc_tiles = space.product([mt, nt], amx_intrin.TILES * amx_intrin.TILES)
        m.Add(acc_tiles + mt + nt <= amx_intrin.TILES)
        # Caches. L1d: the operands of one call (R1 sweep) fit, or the operand that the innermost S2 loop reuses
        # (B when the lane axis is outer in S2, else A) fits with STREAM_BYTES to spare for the other operand's
        # tiles streaming through from L2 (on the device, a 2x2 step whose A tiles stream from L2 while B stays in
        # L1 ran at 82-99% of the register-only peak on one thread; both from L2: 74%). L2: an S2 x R1 block's
        # operands and output tile.
        hint = task.op.dot_hint
        prod = lambda xs: space.product(xs, _cap(lay))  # noqa: E731
        a_sweep, b_sweep = (_operand_bytes(lay, tiles, prod, name) for name in (hint.data, hint.weight))
        l1 = self.target.l1_bytes
        whole = m.NewBoolVar("l1_whole_sweep")
        # With acc_zero a call's K block is the whole K: its operands may both stream from L2 (74% of the peak on one
        # thread in the stream benchmark, against 35% from L3), bounded by the L2 rule below.
        streamed = [acc_zero.Not()] if whole_k else []
        m.Add(q["l1_bytes"] <= l1).OnlyEnforceIf(whole)
        m.Add(b_sweep + STREAM_BYTES <= l1).OnlyEnforceIf([whole.Not(), lane_first[2], *streamed])
        m.Add(a_sweep + STREAM_BYTES <= l1).OnlyEnforceIf([whole.Not(), lane_first[2].Not(), *streamed])
        m.Add(q["l2_bytes"] <= self.target.l2_bytes)
        if 2 in a_levels:
            # a_cache 2 / 3: the copy sits at the row axis' S1 loop, so the S1 lane loop must be inside it
            # (lane_first_1 0), and the copied rows (all of K, rows padded by 64 bytes) stay in L2 next to one S2 x R1 block.
            panel = m.NewBoolVar("a_cache_panel")
            m.Add(a_cache >= 2).OnlyEnforceIf(panel)
            m.Add(a_cache <= 1).OnlyEnforceIf(panel.Not())
            m.Add(lane_first[1] == 0).OnlyEnforceIf(panel)
            # (the S2 x R1 block of A that l2_bytes counts is part of the panel)
            a_block = _operand_bytes(lay, tiles, prod, hint.data, spatial_level=2)
            panel_l2 = _a_panel_bytes(lay, tiles, prod, hint.data) + q["l2_bytes"] - a_block
            m.Add(panel_l2 <= self.target.l2_bytes).OnlyEnforceIf(panel)
        total = int(np.prod([a.extent for a in lay.axes if a.spatial]))
        cores = self.target.cores
        if total >= cores and cores > 1:
            parallel_rule(space, q["parallel_chunks"], cores)
        # Preferences, kept where the shape leaves room for them: a call's fixed cost (tile
        # configuration, accumulator load and store) spread over enough tile products.
        best_grid = max(
            (a * b for a in divisors(row.extent) for b in divisors(lane.extent) if a * b + a + b <= amx_intrin.TILES), default=1
        )
        prefer(space, m.Add(acc_tiles >= min(MIN_ACCUMULATORS, best_grid)))
        prefer(space, m.Add(kc >= min([d for d in divisors(dot.extent) if d >= MIN_K_STEPS], default=dot.extent)))
        # L1 reuse: an S2 block of several calls, which share the K block of A (lanes inner) or of B
        # (rows inner) while it is in L1; measured on GEMM 1024^3 / 4096^3, blocks of 1 call ran 1.3-2x slower.
        s2_calls = space.product([tiles[lay.row][2], tiles[lay.lane][2]], row.extent * lane.extent)
        prefer(space, m.Add(s2_calls >= min(MIN_S2_CALLS, _most_calls(row.extent, lane.extent, cores))))

    def features(self, task: Task, point: Point) -> dict[str, float]:
        lay: AMXLayout = self.layout(task)
        tiles = _tile_factors(lay, point)
        q = _quantities(lay, tiles, lambda xs: int(np.prod(xs)))
        q.pop("acc_registers", None)
        q.pop("b_registers", None)
        spatial = [a for a in lay.axes if a.spatial]
        reduce = [a for a in lay.axes if not a.spatial]
        for level in range(SPATIAL_LEVELS):
            q[f"spatial_tile_{level}"] = int(np.prod([tiles[a.name][level] for a in spatial]))
        for level in range(REDUCE_LEVELS):
            q[f"reduce_tile_{level}"] = int(np.prod([tiles[a.name][level] for a in reduce]))
        mt, nt, kc = point[f"{lay.row}3"], point[f"{lay.lane}3"], point[f"{lay.dot}1"]
        hint = task.op.dot_hint
        reused = hint.weight if point["lane_first_2"] else hint.data
        q["l1_reused_bytes"] = _operand_bytes(lay, tiles, lambda xs: int(np.prod(xs)), reused)
        q["accumulator_tiles"] = mt * nt
        q["tile_loads_per_dot"] = (mt + nt) / (mt * nt)
        q["k_steps"] = kc
        q["acc_zero"] = point.get("acc_zero", 0)
        q["chunks_per_core"] = q["parallel_chunks"] / self.target.cores
        q["balanced"] = float(q["parallel_chunks"] % self.target.cores == 0)
        return {k: float(v) for k, v in q.items()}

    def tile_shape(self, task: Task, point: Point) -> amx_intrin.TileShape:
        lay: AMXLayout = self.layout(task)
        return amx_intrin.TileShape(
            kind_of(task.spec.in_dtype),
            lay.rows,
            point[f"{lay.row}3"],
            point[f"{lay.lane}3"],
            point[f"{lay.dot}1"],
            lay.tk,
            self.row_step(task),
            lanes_first=not self._row_before_lane(lay),
            zero=bool(point.get("acc_zero")),
            a_packed=point.get("a_cache", 0) == 3,
        )

    def apply(self, task: Task, point: Point):
        import tvm
        from tvm import s_tir

        shape = self.tile_shape(task, point)
        generic = self.target.params.microkernel == "generic"
        name = amx_intrin.register(shape, generic=generic)
        compute = self.compute(task)
        lay: AMXLayout = compute.layout
        sch = s_tir.Schedule(tvm.IRModule({"main": compute.func}))
        block = sch.get_sblock(compute.out.op.name)
        factors = _tile_factors(lay, point)
        inner = {lay.row: lay.rows, lay.lane: amx_intrin.LANES, lay.dot: lay.tk * lay.g}
        tiles = {
            ax.name: sch.split(loop, factors[ax.name] + ([inner[ax.name]] if ax.name in inner else []))
            for ax, loop in zip(lay.axes, sch.get_loops(block))
        }
        spatial = [a.name for a in lay.axes if a.spatial]
        reduce = [a.name for a in lay.axes if not a.spatial]
        s = lambda lvl: [tiles[n][lvl] for n in spatial]  # noqa: E731

        def s_ordered(level):
            loops = s(level)
            if point[f"lane_first_{level}"]:
                first = tiles[lay.lane][level]
                return [first, *(x for x in loops if not x.same_as(first))]
            return loops

        nest = {
            "ks": tiles[lay.dot][1],
            "i": tiles[lay.row][3],
            "j": tiles[lay.lane][3],
            "r": tiles[lay.row][4],
            "lane": tiles[lay.lane][4],
            "kk": tiles[lay.dot][2],
        }
        micro = [nest[n] for n in amx_intrin.micro_loops(shape)]
        units = [loop for n, loop in nest.items() if n not in amx_intrin.micro_loops(shape)]
        sch.reorder(
            *s(0),
            *s_ordered(1),
            *[tiles[n][0] for n in reduce],
            *s_ordered(2),
            *[tiles[n][1] for n in reduce if n != lay.dot],
            *[tiles[n][3] for n in spatial if n not in (lay.row, lay.lane)],
            *units,
            *micro,
        )
        if point.get("a_cache"):
            at = tiles[lay.row][1] if point["a_cache"] >= 2 else [tiles[n][0] for n in reduce][-1]
            _cache_data(sch, block, task.op.dot_hint.data, at, shape)
        acc = None
        if point["acc_level"] < 2:
            acc = self.accumulator(sch, compute, block)
            lane_dim, rank = task.op.dot_hint.out_lane_axis, len(task.op.output.shape)
            if lane_dim != rank - 1:  # accumulator tiles are rows x 16 contiguous lanes: lanes innermost
                sch.transform_layout(block, ("write", 0), lambda *i: (*i[:lane_dim], *i[lane_dim + 1 :], i[lane_dim]))
            at = [s(0), s_ordered(1)][point["acc_level"]][-1]
            sch.reverse_compute_at(acc, at)
            row = int(np.prod(factors[lay.lane][point["acc_level"] + 1 :])) * amx_intrin.LANES
            _pad_rows(sch, block, rank, row, 4)  # lanes innermost (transformed above if need be): rows are dim -2
        outer = sch.fuse(*s(0))
        sch.parallel(outer)
        if acc is not None:
            _vectorize_innermost(sch, acc, block)
        init = sch.decompose_reduction(block, tiles[reduce[0]][0])
        sch.tensorize(micro[0], name)
        if shape.zero:  # the init of each call's accumulator tiles is the call's own tilezero: no zeroing pass
            spatial_micro = [n for n in amx_intrin.micro_loops(shape) if n in ("i", "j", "r", "lane")]
            sch.tensorize(sch.get_loops(init)[-len(spatial_micro)], amx_intrin.register_init(shape, generic))
        for stage in compute.stages:
            _parallel_stage_amx(sch, sch.get_sblock(stage), self.target.cores)
        if generic:
            return sch.mod
        return amx_intrin.with_tile_config(sch.mod, sch.get(outer).loop_var.name, shape)

    def _data_in_place(self, task: Task) -> bool:
        """The data operand is read where it lies (no packing stage: a matrix product's rows)."""
        return f"{task.op.dot_hint.data}_pack" not in self.compute(task).stages and self.row_step(task) == 1

    @staticmethod
    def _row_before_lane(lay: AMXLayout) -> bool:
        names = [a.name for a in lay.axes]
        return names.index(lay.row) < names.index(lay.lane)


def _operand_bytes(lay: AMXLayout, tiles: dict, prod, name: str, spatial_level: int = SPATIAL_LEVELS - 1):
    """Bytes of operand ``name`` that one R1 sweep reads (one call's tiles x the other reduction loops of R1):
    its part of the context's ``l1_bytes``; with ``spatial_level`` 2, one S2 x R1 block's (its part of
    ``l2_bytes``). ``prod`` multiplies (CP-SAT variables or integers)."""
    factors = []
    for a in lay.axes:
        if a.name in lay.uses[name]:
            factors += [*tiles[a.name][spatial_level if a.spatial else 1 : a.levels], a.inner]
    const = int(np.prod([f for f in factors if isinstance(f, int)]))
    return lay.itemsize[name] * prod([const, *(f for f in factors if not isinstance(f, int))])


def _a_panel_bytes(lay: AMXLayout, tiles: dict, prod, name: str):
    """Bytes of the data operand that one S1 row tile reads over all of K (what ``a_cache`` 2 copies), with its
    rows padded by 64 bytes: the spatial axes' S2 and S3 factors and the whole reduction axes it uses."""
    spatial, whole = [], 1
    for a in lay.axes:
        if a.name not in lay.uses[name]:
            continue
        if a.spatial:
            spatial += [tiles[a.name][2], tiles[a.name][3], a.inner]
        else:
            whole *= a.extent * a.inner
    rows = prod([f for f in spatial if not isinstance(f, int)] + [int(np.prod([f for f in spatial if isinstance(f, int)]))])
    return rows * (lay.itemsize[name] * whole + amx_intrin.ROW_BYTES)


def _most_calls(row_tiles: int, lane_tiles: int, cores: int) -> int:
    """An upper bound on the calls of one S2 block once every core has a chunk: the row x lane tile
    grid of 2x2 calls, divided among the cores."""
    return max(1, (row_tiles // 2 or 1) * (lane_tiles // 2 or 1) // max(1, cores))


ALIAS_BYTES = 1024  # tile rows a multiple of this apart fall into at most 4 of the 64 L1 sets


def _pad_rows(sch, block, rank: int, row: int, itemsize: int) -> None:
    """Pad the rows of the buffer ``block`` writes (its first write, ``rank`` dimensions, rows of ``row``
    elements once compacted) by 64 bytes when their length is a multiple of ALIAS_BYTES, so that the 16
    rows of a tile spread over the L1 sets instead of crowding a few (4 KiB apart: all in one, 12 ways)."""
    if rank < 2 or (row * itemsize) % ALIAS_BYTES:
        return
    sch.storage_align(block, 0, rank - 2, row + amx_intrin.ROW_BYTES // itemsize, 0)


def _cache_data(sch, block, data: str, at, shape: amx_intrin.TileShape) -> None:
    """Copy the data operand's block under loop ``at`` (an R0 loop: the rows of one S2 block x one K
    block) into a contiguous buffer, so that A tiles come from a compact, L1-friendly block instead of
    rows a whole K apart; the copy's innermost loop moves 64-byte vectors."""
    reads = [r.source.name for r in sch.get(block).reads]
    cache = sch.cache_read(block, reads.index(data), "global")
    sch.compute_at(cache, at)
    loops = sch.get_loops(cache)
    rank = len(sch.get(cache).writes[0].region)
    row = int(sch.get(loops[-1]).extent)
    itemsize = 4 // shape.group
    if shape.a_packed:  # (..., rows of M, K) -> (..., M / rows, K / (tk*g), rows, tk*g): each A tile contiguous
        kw = shape.tk * shape.group
        sch.transform_layout(
            cache, ("write", 0), lambda *i: (*i[:-2], i[-2] // shape.rows, i[-1] // kw, i[-2] % shape.rows, i[-1] % kw)
        )
    else:
        _pad_rows(sch, cache, rank, row, itemsize)
    width = max(d for d in divisors(row) if d * itemsize <= amx_intrin.ROW_BYTES)
    inner = loops[-1]
    if width < row:
        inner = sch.split(inner, [None, width])[1]
    sch.vectorize(inner)


def _parallel_stage_amx(sch, block, cores: int) -> None:
    """A packing stage: the weight's (innermost: a group of g) as dlboost's; the data's (innermost: the
    whole reduction dimension, e.g. C) with its outer loops fused and spread, the inner copy left to LLVM."""
    loops = sch.get_loops(block)
    if len(loops) == 1 or int(sch.get(loops[-1]).extent) <= amx_intrin.LANES:
        _parallel_stage(sch, block, cores)
        return
    outer, chunks = [], 1
    for loop in loops[:-1]:
        if chunks >= 4 * cores:
            break
        outer.append(loop)
        chunks *= int(sch.get(loop).extent)
    sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
