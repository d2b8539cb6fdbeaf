"""CPUContext: the x86 VNNI schedule template and its rules.

Loop structure of the compute block (S = spatial axes, R = reduction axes, [] = one level):

    [S0 fused, parallel] [S1] [R0] [S2] [R1] [S3 unrolled] [16 lanes x 4 k: micro-kernel]

The weight named by the operator's DotHint is stored packed as (lanes/16, ..., red/4, 16, 4)
so that each micro-kernel reads one contiguous 64-byte tile; packing happens once, ahead of
the kernel, as inference libraries do with constant weights (``kernel_args``). The output is
accumulated in a cache block written back at level ``acc_level`` (after S0 or after S1), or,
when its lanes are contiguous in the output, in the output itself (2). Within S1 and S2 the
lane axis may go first (``lane_first_1/2``) so that one weight tile is reused across the other
axes while it is in cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from heron_core.layout import BlockedLayout
from heron_core.operator import TensorSpec, padded
from heron_core.space import Point, SearchSpace, divisors
from heron_core.target import Context
from heron_cpu_dlboost import conv_fold, intrin

if TYPE_CHECKING:
    from heron_core.task import Task
    from heron_cpu_dlboost.target import DLBoostTarget

SPATIAL_LEVELS, REDUCE_LEVELS = 4, 2
UNROLL_STEPS = (0, 16, 64)
ZMM_REGISTERS = 32
MIN_CHAINS = 8  # vpdpbusd: ~4-5 cycles latency x 2 ports in flight
ROW_KNOB = "row_extent"
ROW_CHOICES = 3  # padded extents of the row axis the tuner may choose among
LANE_KNOB = "lane_remainder"
REMAINDER_ROWS = 8  # rows of a remainder group: one zmm (and one tail xmm) each, live until their copy


@dataclass(frozen=True)
class Axis:
    name: str
    extent: int  # in micro-kernel units for the lane (/16) and dot (/4) axes
    inner: int  # what the micro-kernel covers: 16, 4 or 1
    spatial: bool

    @property
    def levels(self) -> int:
        return SPATIAL_LEVELS if self.spatial else REDUCE_LEVELS


@dataclass(frozen=True)
class Layout:
    """The compute block's axes and, per input, which axes index it (for footprints)."""

    axes: tuple[Axis, ...]
    uses: dict[str, frozenset[str]]
    itemsize: dict[str, int]


@dataclass(frozen=True)
class Compute:
    """The TE compute of a task on micro-kernel layouts, built once per task and process."""

    func: object  # tirx.PrimFunc
    out: object  # te.Tensor
    read: dict  # the readers the operator used, with the loop variables that indexed each
    stages: tuple[str, ...]  # blocks that pack or pad an operand inside the kernel
    layout: Layout
    write_back: str | None = None  # the block writing the output from the accumulator: a padded output's
    # logical part and/or the operator's epilogue (bias, ReLU, requantization)
    row_axis: str | None = None  # the row axis (``padded_extents``) and the extents it may be padded to
    row_choices: tuple[int, ...] = ()
    remainder: Remainder | None = None  # the last, partial lane block's own computes (``lane_remainder``)


@dataclass(frozen=True)
class Remainder:
    """The blocks that compute the last, partial lane block instead of the 16-lane micro-kernel (``lane_remainder``):
    ``block`` (per row, ``lanes`` x 16/``lanes`` partial sums, one remainder micro-kernel call per row and 4 x
    16/``lanes`` reduction elements), ``tail`` (the groups of 4 reduction elements left over, one chunk per call) and
    ``sums`` (per row and lane, the two added up). The main compute runs on the logical lanes; its schedule splits them
    at ``base``: the whole lane blocks below are tiled as usual (in place in the output), the lanes from ``base`` on
    are copied from ``sums``, the remainder blocks computed per group of rows next to that copy."""

    block: str
    tail: str | None
    sums: str
    lanes: int
    base: int  # the block's first lane
    grouped: bool  # the data operand is read from its (..., reduce/4, 4) packing


class CPUContext(Context):
    def __init__(self, target: DLBoostTarget):
        self.target = target
        self._computes: dict[tuple[str, int | None], Compute] = {}

    # --- the compute, on the layouts the micro-kernel reads -----------------------------
    def compute(self, task: Task, point: Point | None = None) -> Compute:
        """The compute a point runs on (its ``row_extent``, ``fold_taps`` and ``lane_remainder``; without a point, the
        first choices)."""
        row = point.get(ROW_KNOB) if point else None
        fold = point.get(conv_fold.KNOB, 0) if point else 0
        rem = bool(point.get(LANE_KNOB, 0)) if point else False
        key = (task.spec.model_dump_json(), row, fold, rem)
        if key not in self._computes:
            self._computes[key] = self._build_folded(task, row, fold) if fold else self._build_compute(task, row, rem)
        return self._computes[key]

    def layout(self, task: Task, point: Point | None = None) -> Layout:
        return self.compute(task, point).layout

    def _build_compute(self, task: Task, row: int | None = None, remainder: bool = False) -> Compute:
        """The operator's compute with the dot operands in micro-kernel layouts, on padded extents.

        The weight operand becomes (lanes/16, ..., reduce/4, 16, 4): a ``weight`` or ``constant``
        argument is passed packed (``kernel_args``), an ``input`` is packed by a stage of the
        kernel. The data operand gets its reduction dimension innermost in groups of 4, padding
        included, by a stage of the kernel when its logical layout is not already so.

        Extents the micro-kernel does not divide are padded inside the kernel (``padded_extents``):
        the lane axis to a multiple of 16, the dot axis to a multiple of 4, the row axis to an extent
        that tiles well. The operands are then zero-padded where they are packed (the weight ahead of
        the calls, the data by its pack stage), the compute runs on the padded extents, and, when the
        output is padded, a write-back block (the operator's output) copies its logical part. With ``remainder``
        (``lane_remainder``), the lanes beyond the last multiple of 16 are computed by blocks of their own instead, and
        the compute runs on the logical lanes (its schedule tiles the whole lane blocks only).
        """
        from tvm import te, tirx

        op, hint = task.op, task.op.dot_hint
        blocking = self.weight_blocking(task)
        probes = {t.name: _probe(t) for t in [*op.inputs, *op.constants]}
        probe = op.compute(probes)
        row_i = _row_axis(task, probe, probes[hint.data].used)
        row_axis = None if row_i is None else probe.op.axis[row_i].var.name
        choices = () if row_i is None else self.row_extents(int(probe.op.axis[row_i].dom.extent))
        if row is not None and row not in choices:
            raise ValueError(f"{op.name}: row extent {row} is not one of {choices}")
        extents = self.padded_extents(task, probe, row_i, choices[0] if row is None and choices else row)
        needs = _read_extents(probes, probe, extents)
        args, read, stages = [], {}, []
        epilogue = op.epilogue
        extra = {t.name for t in epilogue.tensors()} if epilogue else set()
        for t in [*op.inputs, *op.constants]:
            if t.name in extra:  # read by the epilogue only, straight from its argument
                args.append(te.placeholder(t.shape, t.dtype, name=t.name))
                continue
            need = list(needs[t.name])
            if t.name == hint.weight:
                for d, m in ((hint.weight_lane_dim, blocking.lanes), (hint.weight_reduce_dim, blocking.reduce)):
                    need[d] = round_up(need[d], m)
            elif t.name == hint.data:
                need[hint.data_reduce_dim] = round_up(need[hint.data_reduce_dim], blocking.reduce)
            need = tuple(need)
            shape = blocking.shape(t.shape) if _prepacked(t, hint) else t.shape
            ph = te.placeholder(shape, t.dtype, name=t.name)
            args.append(ph)
            source = _zero_beyond(padded(lambda *i, ph=ph: ph[i], t), t, need)
            if _prepacked(t, hint):
                read[t.name] = _recording(ph, _WeightLayout(t.shape, blocking).packed)
                continue
            if t.name == hint.weight:
                layout = _WeightLayout(need, blocking)
            elif t.name == hint.data and (need != t.shape or hint.data_reduce_dim != len(t.shape) - 1):
                layout = self.data_layout(need, hint.data_reduce_dim)
            elif need == t.padded_shape:
                read[t.name] = _recording(None, None, source)
                continue
            else:
                raise ValueError(f"{op.name}: '{t.name}' would be read beyond its extents on the padded compute")
            stages.append(_pack_stage(t.name, layout, source))
            read[t.name] = _recording(stages[-1], layout.packed)
        out = op.compute(read)
        write_back = rem = init = None
        if any(int(iv.dom.extent) != extents[iv.var.name] for iv in [*out.op.axis, *out.op.reduce_axis]):
            logical = out
            if remainder:  # the lanes on their logical extent, the last ones from the remainder's sums
                rem, sums = self._remainder(task, _on_extents(logical, extents, "padded"), stages)
                extents = {**extents, logical.op.axis[hint.out_lane_axis].var.name: op.output.shape[-1]}
                init = lambda *i: sums[(*i[:-1], tirx.max(i[-1] - rem.base, 0))]  # noqa: E731 (TIR drops it: _split_off_remainder)
            padded_out = any(int(iv.dom.extent) != extents[iv.var.name] for iv in out.op.axis)
            out = _on_extents(logical, extents, f"{out.op.name}_padded" if padded_out else out.op.name, init)
            if padded_out and not epilogue:
                write_back = te.compute(op.output.shape, lambda *i: out[i], name=op.output.name)
        if epilogue:
            write_back = epilogue.compute(out, {a.name: a for a in args if a.name in extra}, op.output.shape)
        func = te.create_prim_func([*args, out if write_back is None else write_back])
        stage_names = tuple(s.op.name for s in stages)
        layout = self.layout_of(task, out, read)
        write_back_name = None if write_back is None else write_back.op.name
        return Compute(func, out, read, stage_names, layout, write_back_name, row_axis, choices, rem)

    def _build_folded(self, task: Task, row: int | None, mode: int) -> Compute:
        """The compute with kernel taps folded into the dot's reduction (``conv_fold``), on the spatial extents of
        the unfolded one (same axis names: the spatial tile knobs are shared, and the taps a fold leaves)."""
        from tvm import te

        op = task.op
        base = self.compute(task, None if row is None else {ROW_KNOB: row})
        names = [iv.var.name for iv in base.out.op.axis]
        extents = {iv.var.name: int(iv.dom.extent) for iv in base.out.op.axis}
        reduce_names = [iv.var.name for iv in base.out.op.reduce_axis]
        packed = _WeightLayout(op.tensor(op.dot_hint.weight).shape, self.weight_blocking(task))
        layouts = (lambda shape, dim: _WeightLayout(shape, blocked(dim, 0)), self.data_layout, packed)
        args, out, read, stages = conv_fold.build(task, mode, extents, names, reduce_names, layouts)
        write_back = None
        if op.epilogue:
            extra = {t.name for t in op.epilogue.tensors()}
            write_back = op.epilogue.compute(out, {a.name: a for a in args if a.name in extra}, op.output.shape)
        elif tuple(out.shape) != op.output.shape:
            write_back = te.compute(op.output.shape, lambda *i: out[i], name=op.output.name)
        func = te.create_prim_func([*args, out if write_back is None else write_back])
        write_back_name = None if write_back is None else write_back.op.name
        return Compute(func, out, read, stages, self.layout_of(task, out, read), write_back_name, base.row_axis, base.row_choices)

    def padded_extents(self, task: Task, out, row_i: int | None, row: int | None) -> dict[str, int]:
        """The extent of each compute axis (by name) the kernel runs on: the lane axis up to a multiple of the
        weight blocking's lanes, the dot axis of its reduce group, the row axis (index ``row_i``: the data
        operand's last spatial axis other than the lanes) to ``row``; the others as they are."""
        hint = task.op.dot_hint
        blocking = self.weight_blocking(task)
        extents = {}
        for i, iv in enumerate(out.op.axis):
            n = int(iv.dom.extent)
            if i == hint.out_lane_axis:
                n = round_up(n, blocking.lanes)
            elif i == row_i:
                n = row
            extents[iv.var.name] = n
        for i, iv in enumerate(out.op.reduce_axis):
            n = int(iv.dom.extent)
            extents[iv.var.name] = round_up(n, blocking.reduce) if i == hint.reduce_axis else n
        return extents

    def row_extents(self, n: int) -> tuple[int, ...]:
        """The extents the row axis may be padded to (the ``row_extent`` knob), best first: within bounded waste,
        extents with a register-tile-sized divisor (one with none, such as the prime 197, would leave one row per
        register tile); ``n`` alone when it has one."""
        return padded_extents(n, lambda e: min(max_divisor(e, ZMM_REGISTERS - 4), MIN_CHAINS) / MIN_CHAINS, ROW_CHOICES)

    def remainder_lanes(self, task: Task) -> int | None:
        """The lanes of the remainder micro-kernel (``lane_remainder``) when the template offers it: the output's lane
        axis is its last, leaves 1 to 8 lanes beyond a multiple of 16 (2, 4 or 8 lanes, padded up to one of these,
        cost fewer vpdpbusd than a block padded to 16), the dot is the only reduction, at least one call deep, and the
        data operand has it innermost (its 4 x 16/lanes consecutive elements are contiguous); else None."""
        op, hint = task.op, task.op.dot_hint
        data, n = op.tensor(hint.data), op.output.shape[-1]
        if hint.out_lane_axis != len(op.output.shape) - 1 or n < intrin.LANES or not 1 <= n % intrin.LANES <= 8:
            return None
        if hint.data_reduce_dim != len(data.shape) - 1 or data.pad or op.epilogue:
            return None
        reduce = self.compute(task).out.op.reduce_axis
        lanes = max(2, 1 << (n % intrin.LANES - 1).bit_length())  # a loop of 1 lane would not match the micro-kernel
        if len(reduce) != 1 or int(reduce[0].dom.extent) < intrin.LANES // lanes * intrin.REDUCE:
            return None
        return lanes

    def _remainder(self, task: Task, padded, stages: list):
        """The remainder blocks of the compute ``padded`` (lanes padded to a multiple of 16): see ``Remainder``."""
        lanes = self.remainder_lanes(task)
        hint = task.op.dot_hint
        base = task.op.output.shape[-1] // intrin.LANES * intrin.LANES
        block, tail, sums = _remainder_computes(padded, base, lanes)
        grouped = any(s.op.name == f"{hint.data}_pack" for s in stages)
        rem = Remainder(block.op.name, tail.op.name if tail is not None else None, sums.op.name, lanes, base, grouped)
        return rem, sums

    # --- what a variant of the template (e.g. AMX) may change: operand layouts, the compute's axes
    def weight_blocking(self, task: Task) -> BlockedLayout:
        """The weight's blocked layout (packed ahead of time when it is a ``weight``, by a stage otherwise)."""
        return weight_layout(task.op.dot_hint)

    def data_layout(self, shape: tuple[int, ...], reduce_dim: int):
        """The broadcast operand's layout when it must be packed (padding, reduction not innermost)."""
        return _DataLayout(shape, reduce_dim)

    def layout_of(self, task: Task, out, read: dict) -> Layout:
        return _layout_of(task, out, read)

    # --- the template --------------------------------------------------------------------
    def define(self, task: Task, space: SearchSpace) -> None:
        compute = self.compute(task)
        lay = compute.layout
        m = space.model
        tiles = {}
        row = None
        if len(compute.row_choices) > 1:
            row = space.knob(ROW_KNOB, compute.row_choices, f"the extent the row axis {compute.row_axis} is padded to")
        folds = self.fold_modes(task)
        is_mode = conv_fold.declare(space, folds) if len(folds) > 1 else None
        axis_modes = self._fold_axes(task, folds) if is_mode else {}
        rem = self._remainder_knob(task, space)
        rem_is = None if rem is None else {r: space.equals(rem, r) for r in (0, 1)}
        for ax in lay.axes:
            kind = "spatial" if ax.spatial else "reduction"
            doc = f"{kind} tile factors of {ax.name} (outer to inner)"
            if row is not None and ax.name == compute.row_axis:  # inner 1: the knob's extents are the axis' own
                tiles[ax.name] = space.split_among(ax.name, compute.row_choices, row, ax.levels, doc)
            elif rem is not None and ax.inner == intrin.LANES:  # the remainder's compute has one lane block fewer
                tiles[ax.name] = space.split_among(ax.name, (ax.extent, ax.extent - 1), ax.extent - rem, ax.levels, doc)
            elif is_mode is not None and not ax.spatial:  # not in every fold mode
                on = conv_fold.present(space, is_mode, axis_modes[ax.name])
                tiles[ax.name] = conv_fold.split_if(space, ax.name, ax.extent, ax.levels, on, doc)
            else:
                tiles[ax.name] = space.split(ax.name, ax.extent, ax.levels, doc)
        self._acc_knob(task, space, row, rem_is)
        for level in (1, 2):
            space.knob(f"lane_first_{level}", (0, 1), f"the lane axis outermost among the S{level} loops")
        space.knob("unroll", UNROLL_STEPS, "auto-unroll max step on the kernel body")
        for skip in self.skips(task):
            space.knob(skip.knob, (0, 1), skip.doc)
        q = _quantities(lay, tiles, lambda xs: space.product(xs, _cap(lay)))
        spatial = [a for a in lay.axes if a.spatial]
        lane = next(a for a in spatial if a.inner == intrin.LANES)

        # Registers: the S3 accumulator tile, one B vector per lane block, one broadcast of A;
        # and enough independent accumulators to hide vpdpbusd's latency (when the shape allows).
        total = int(np.prod([a.extent for a in spatial]))
        cores = self.target.cores
        parallel = total >= cores and cores > 1
        m.Add(q["acc_registers"] + q["b_registers"] + 1 <= ZMM_REGISTERS)
        for r, lanes in ((0, lane), (1, Axis(lane.name, lane.extent - 1, lane.inner, True)))[: 1 if rem is None else 2]:
            axes = [lanes if a is lane else a for a in spatial]  # the remainder's compute: one lane block fewer
            most = int(np.prod([a.extent for a in axes]))
            tile = _max_register_tile(axes, lanes, most // cores if parallel else most)
            chains = m.Add(q["acc_registers"] >= min(MIN_CHAINS, tile))
            if rem is not None:
                chains.OnlyEnforceIf(rem_is[r])
        # Caches: operands of one R1 sweep of the micro-kernel in L1; those of one S2 x R1
        # block, plus its output tile, in L2 (both per core).
        m.Add(q["l1_bytes"] <= self.target.l1_bytes)
        m.Add(q["l2_bytes"] <= self.target.l2_bytes)
        if parallel and rem is None:
            parallel_rule(space, q["parallel_chunks"], cores)
        elif parallel:  # each compute as far as its own lane blocks allow
            for r in (0, 1):
                parallel_rule(space, q["parallel_chunks"], cores, rem_is[r])
        if is_mode is not None:
            self._fold_rules(task, space, tiles, is_mode, axis_modes)

    def fold_modes(self, task: Task) -> tuple[int, ...]:
        """The ``fold_taps`` values the template offers (``conv_fold.modes``); (0,): no knob."""
        return conv_fold.modes(task)

    def _fold_axes(self, task: Task, folds: tuple[int, ...]) -> dict[str, list[int]]:
        """Per reduction axis of any fold mode (by name), the modes whose compute has it."""
        axes: dict[str, list[int]] = {}
        for mode in folds:
            for ax in self.layout(task, {conv_fold.KNOB: mode}).axes:
                if not ax.spatial:
                    axes.setdefault(ax.name, []).append(mode)
        return axes

    def _fold_rules(self, task: Task, space: SearchSpace, tiles: dict, is_mode: dict, axis_modes: dict) -> None:
        """The tiles of the folds' own reduction axes, and the cache rules on each fold's layout (the unfolded ones,
        with the unfolded-only reduction tiles all 1, are then looser); no skipped sweeps (they test the unfolded
        data stage's padding)."""
        m = space.model
        tiles = dict(tiles)
        for mode, on in is_mode.items():
            if mode == conv_fold.NONE:
                continue
            lay = self.layout(task, {conv_fold.KNOB: mode})
            for ax in lay.axes:
                if ax.name not in tiles:
                    doc = f"reduction tile factors of {ax.name}, folded taps x channels (outer to inner)"
                    there = conv_fold.present(space, is_mode, axis_modes[ax.name])
                    tiles[ax.name] = conv_fold.split_if(space, ax.name, ax.extent, ax.levels, there, doc)
            q = _quantities(lay, tiles, lambda xs, lay=lay: space.product(xs, _cap(lay)))
            m.Add(q["l1_bytes"] <= self.target.l1_bytes).OnlyEnforceIf(on)
            m.Add(q["l2_bytes"] <= self.target.l2_bytes).OnlyEnforceIf(on)
        for skip in self.skips(task):
            m.Add(space.knobs[skip.knob].var == 0).OnlyEnforceIf(is_mode[conv_fold.NONE].Not())

    def _remainder_knob(self, task: Task, space: SearchSpace):
        """The ``lane_remainder`` knob where the template offers it (``remainder_lanes``): 0 pads the last lane block to
        16 lanes (the default, what records from before the knob ran), 1 computes it with the remainder micro-kernel."""
        lanes = self.remainder_lanes(task)
        if lanes is None:
            return None
        r = task.op.output.shape[-1] % intrin.LANES
        doc = f"compute the last {r} lanes with a {lanes}-lane remainder kernel (1) or pad them to 16 (0)"
        return space.knob(LANE_KNOB, (0, 1), doc)

    def _acc_knob(self, task: Task, space: SearchSpace, row, rem_is: dict | None) -> None:
        """The ``acc_level`` knob, 2 (in place) only on the computes (``row_extent`` x ``lane_remainder``, whose values
        ``rem_is`` tells) that may accumulate in their own buffer: a padded output is accumulated in a cache whose
        logical part is written back."""
        m = space.model
        rows = self.compute(task).row_choices if row is not None else (None,)
        lanes = (0, 1) if rem_is is not None else (0,)
        variants = [(e, r) for e in rows for r in lanes]
        in_place = {v: self.may_accumulate_in_output(task, {ROW_KNOB: v[0], LANE_KNOB: v[1]}) for v in variants}
        doc = "accumulate in a cache written back after the parallel loop (0) or after each S1 tile (1), or in place (2)"
        acc = space.knob("acc_level", (0, 1, 2) if any(in_place.values()) else (0, 1), doc)
        if any(in_place.values()) and not all(in_place.values()):
            in_output = space.equals(acc, 2)
            for (e, r), ok in in_place.items():
                if not ok:
                    where = ([space.equals(row, e)] if row is not None else []) + ([rem_is[r]] if rem_is is not None else [])
                    m.AddBoolOr([in_output.Not(), *(w.Not() for w in where)])

    def may_accumulate_in_output(self, task: Task, point: Point | None = None) -> bool:
        """Whether the output itself can be the accumulator (``acc_level`` 2) of the compute ``point`` runs on: its
        lanes are contiguous and it is not padded (a padded output is accumulated in a cache whose logical part is
        written back)."""
        lane_last = task.op.dot_hint.out_lane_axis == len(task.op.output.shape) - 1
        return lane_last and self.compute(task, point).write_back is None

    def accumulator(self, sch, compute: Compute, block):
        """The write-back block of the output's accumulator: the padded output's own, or a new cache's (with a
        remainder, whose main block is in a partition of its own, the padded output's write-back stays a pass after)."""
        if compute.write_back is not None and compute.remainder is None:
            return sch.get_sblock(compute.write_back)
        return sch.cache_write(block, 0, "global")

    def features(self, task: Task, point: Point) -> dict[str, float]:
        """The template's quantities for this point (the ones its rules bound), for cost models."""
        lay = self.layout(task, point)
        tiles = _tile_factors(lay, point)
        q = _quantities(lay, tiles, math.prod)
        spatial = [a for a in lay.axes if a.spatial]
        reduce = [a for a in lay.axes if not a.spatial]
        for level in range(SPATIAL_LEVELS):
            q[f"spatial_tile_{level}"] = math.prod([tiles[a.name][level] for a in spatial])
        for level in range(REDUCE_LEVELS):
            q[f"reduce_tile_{level}"] = math.prod([tiles[a.name][level] for a in reduce])
        q["chunks_per_core"] = q["parallel_chunks"] / self.target.cores
        q["balanced"] = float(q["parallel_chunks"] % self.target.cores == 0)
        return {k: float(v) for k, v in q.items()}

    def apply(self, task: Task, point: Point):
        import tvm
        from tvm import s_tir

        intrin.register()
        compute = self.compute(task, point)
        lay = compute.layout
        sch = s_tir.Schedule(tvm.IRModule({"main": compute.func}))
        block = sch.get_sblock(compute.out.op.name)
        if compute.remainder is not None:
            block, copy = _split_off_remainder(sch, block, compute.remainder)
        name = sch.get(block).name_hint
        factors = _tile_factors(lay, point)
        tiles = {
            ax.name: sch.split(loop, factors[ax.name] + ([ax.inner] if ax.inner > 1 else []))
            for ax, loop in zip(lay.axes, sch.get_loops(block))
        }
        spatial = [a.name for a in lay.axes if a.spatial]
        reduce = [a.name for a in lay.axes if not a.spatial]
        micro = [tiles[a.name][-1] for a in lay.axes if a.inner > 1]  # lane loop, then dot loop
        s = lambda lvl: [tiles[n][lvl] for n in spatial]  # noqa: E731
        r = lambda lvl: [tiles[n][lvl] for n in reduce]  # noqa: E731
        lane = next(a.name for a in lay.axes if a.inner == intrin.LANES)

        def s_ordered(level):
            loops = s(level)
            if point[f"lane_first_{level}"]:
                first = tiles[lane][level]
                return [first, *(x for x in loops if not x.same_as(first))]
            return loops

        # An empty R0 goes below S2: the reduction's init (vectorized below) then lands next to the
        # register tile it zeroes, and LLVM starts the accumulators from zero registers instead of
        # storing zeros over the S2 block for the first R1 sweep to load.
        r0_empty = all(factors[n][0] == 1 for n in reduce)
        middle = [*s_ordered(2), *r(0)] if r0_empty else [*r(0), *s_ordered(2)]
        sch.reorder(*s(0), *s_ordered(1), *middle, *r(1), *s(3), *micro)

        outer_levels = [s(0), s_ordered(1)]
        acc = None
        if point["acc_level"] < 2:
            acc = self.accumulator(sch, compute, block)
            lane_dim, rank = task.op.dot_hint.out_lane_axis, len(task.op.output.shape)
            if lane_dim != rank - 1:  # the micro-kernel writes 16 contiguous lanes: move them innermost
                sch.transform_layout(
                    block,
                    ("write", 0),
                    lambda *i: (*i[:lane_dim], i[lane_dim] // intrin.LANES, *i[lane_dim + 1 :], i[lane_dim] % intrin.LANES),
                )
            sch.reverse_compute_at(acc, outer_levels[point["acc_level"]][-1])
        outer = sch.fuse(*s(0))
        sch.parallel(outer)
        if point.get(conv_fold.KNOB):
            at = (outer, s_ordered(1)[-1])[point.get(conv_fold.GATHER_KNOB, 0)]
            conv_fold.schedule(sch, point[conv_fold.KNOB], task.op.shape.C, at, self.target.cores)
        for loop in s(3):
            sch.unroll(loop)
        if point["unroll"]:
            sch.annotate(outer, "pragma_auto_unroll_max_step", point["unroll"])
            sch.annotate(outer, "pragma_unroll_explicit", 1)
        if acc is not None:
            _vectorize_innermost(sch, acc, block)
        init = sch.decompose_reduction(block, r(0)[0])
        sch.vectorize(sch.get_loops(init)[-1])  # the 16 lanes: one vector store LLVM can forward
        sch.tensorize(micro[0], intrin.NAMES[self.target.params.microkernel])
        for stage in compute.stages:
            _parallel_stage(sch, sch.get_sblock(stage), self.target.cores)
        chosen = [skip for skip in self.skips(task) if point[skip.knob]]
        if chosen:
            _skip_calls(sch, sch.get_sblock(f"{name}_update_o"), chosen, r(1)[0])
        if compute.remainder is not None:
            _schedule_remainder(sch, compute.remainder, copy, self.target.params.microkernel, self.target.cores)
            if compute.write_back is not None:
                _vectorize_innermost(sch, sch.get_sblock(compute.write_back))
        return sch.mod

    def skips(self, task: Task) -> list[Skip]:
        """Micro-kernel calls the template may skip: those reading only the broadcast operand's
        zero padding (per padded dimension), or a tile of a constant weight known to be zero."""
        from tvm import tirx

        op, hint = task.op, task.op.dot_hint
        data = op.tensor(hint.data)
        skips = [
            Skip(
                f"skip_pad_{d}",
                f"skip the R1 sweeps that read only zero padding of {data.name} along dim {d}",
                f"{data.name}_pack",
                lambda lo, hi, d=d, first=first, n=n: tirx.all(hi[d] >= first, lo[d] < first + n),
            )
            for d, (n, (first, after, gap)) in enumerate(zip(data.shape, data.pad or ()))
            if (first or after) and not gap and d != hint.data_reduce_dim
        ]
        weight = op.tensor(hint.weight)
        corner = [0] * len(weight.shape)
        if weight.role == "constant" and op.may_be_nonzero(weight.name, corner, corner) is not None:
            layout = _WeightLayout(weight.shape, self.weight_blocking(task))

            def tiles_may_be_nonzero(lo, hi):
                last = layout.logical(hi)
                last[hint.weight_lane_dim] += intrin.LANES - 1
                last[hint.weight_reduce_dim] += intrin.REDUCE - 1
                return op.may_be_nonzero(weight.name, layout.logical(lo), last)

            skips.append(
                Skip(
                    f"skip_zero_{weight.name}",
                    f"skip the R1 sweeps whose tiles of the constant {weight.name} are all zeros",
                    weight.name,
                    tiles_may_be_nonzero,
                )
            )
        return skips

    def constant_args(self, task: Task) -> list[TensorSpec]:
        return task.op.constants

    def arg_layouts(self, task: Task) -> dict[str, BlockedLayout]:
        hint = task.op.dot_hint
        if not _prepacked(task.op.tensor(hint.weight), hint):
            return {}
        return {hint.weight: self.weight_blocking(task)}


def parallel_rule(space: SearchSpace, chunks, cores: int, where=None) -> None:
    """Parallelism, as far as the shape allows: at least one chunk per core, and either an even
    split or many chunks (4 per core, else 2: a 14 x 14 x 64 convolution has 56 on 16 cores);
    with ``where`` (a literal), only where it holds."""
    m = space.model
    prefer(space, m.Add(chunks >= cores), where)
    rem = space.var(0, cores - 1)
    m.AddModuloEquality(rem, chunks, cores)
    even = m.NewBoolVar("even_split")
    m.Add(rem == 0).OnlyEnforceIf(even)
    for per_core in (4, 2):
        many = m.Add(chunks >= per_core * cores)
        many.OnlyEnforceIf(even.Not())
        if prefer(space, many, where):
            break


def prefer(space: SearchSpace, constraint, where=None) -> bool:
    """Keep the linear ``constraint`` (just added to ``space.model``; with ``where``, a literal, only where that
    holds) unless it leaves the space (where ``where`` holds) empty; returns whether it was kept."""
    from ortools.sat.python import cp_model

    model = space.model
    if where is not None:
        constraint.OnlyEnforceIf(where)
        model = space.model.clone()
        model.AddBoolAnd([where])
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = 10.0
    solver.parameters.catch_sigint_signal = False
    if solver.Solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return True
    space.model.Proto().constraints[constraint.Index()].clear_linear()  # an empty constraint: always true
    return False


@dataclass(frozen=True)
class Skip:
    """Micro-kernel calls that may be skipped. ``test(lo, hi)`` gets the box of start indices of
    the ``operand`` tiles that a group of calls reads and is false where they would only add zeros."""

    knob: str
    doc: str
    operand: str
    test: Callable[[list, list], object]


def _skip_calls(sch, block, skips: list[Skip], sweep) -> None:
    """Skip whole R1 sweeps (the loops from ``sweep`` down: the register-resident inner nest) whose tiles are all
    zeros: the tests become the tensorized block's predicate, over the box the sweep covers, and TVM's
    HoistIfThenElse lifts them to the loop they depend on."""
    from tvm import s_tir, tirx

    rvs = sch.get_loops(block)
    loops = [sch.get(rv) for rv in rvs]
    first = next(i for i, node in enumerate(loops) if node.loop_var.same_as(sch.get(sweep).loop_var))
    loop_vars = [node.loop_var for node in loops]
    innermost = loops[-1]
    realize = innermost.body
    iters = [iv.var for iv in realize.block.iter_vars]

    def box(starts, corner: bool) -> list:
        values = loop_vars[:first] + [node.min + (node.extent - 1 if corner else 0) for node in loops[first:]]
        return list(tirx.IndexMap(loop_vars, starts, None).map_indices(values))

    conds = []
    for skip in skips:
        region = next(r.region for r in realize.block.reads if r.source.name == skip.operand)
        starts = tirx.IndexMap(iters, [r.min for r in region], None).map_indices(list(realize.iter_values))
        conds.append(skip.test(box(starts, False), box(starts, True)))
    body = s_tir.SBlockRealize(realize.iter_values, tirx.all(realize.predicate, *conds), realize.block)
    new = tirx.For(
        innermost.loop_var, innermost.min, innermost.extent, innermost.kind, body, innermost.thread_binding, innermost.annotations
    )
    sch.state.replace(sch.get_sref(rvs[-1]), new)


def _schedule_remainder(sch, rem: Remainder, copy: str, microkernel: str, cores: int) -> None:
    """The last lanes, per group of up to ``REMAINDER_ROWS`` rows: the remainder blocks' calls for those rows (one per
    row and chunk of reduction, accumulators zeroed in registers), then the copy adding them up into the output. A
    group's partial sums stay in registers (a buffer of under 1 KB, on the stack); the groups run in parallel on
    several cores (on one, a parallel loop costs a launch)."""
    *rows, lanes = sch.get_loops(sch.get_sblock(copy))
    sch.vectorize(lanes)
    outer = None
    if rows:
        outer, inner = sch.split(rows[-1], [None, max_divisor(int(sch.get(rows[-1]).extent), REMAINDER_ROWS)])
        sch.unroll(inner)
        if cores > 1:  # in the partition's scope, where the copy is the output's only writer
            outer = sch.fuse(*rows[:-1], outer) if len(rows) > 1 else outer
            sch.parallel(outer)
    _flatten(sch, _enclosing(_enclosing(sch.get_sref(sch.get_sblock(copy)))))
    sch.compute_inline(sch.get_sblock(rem.sums))
    shared = len(sch.get_loops(sch.get_sblock(copy))) - (2 if rows else 1)  # the copy's loops down to its row groups
    for name, chunks in ((rem.block, None), (rem.tail, 1)):
        if name is None:
            continue
        block = sch.get_sblock(name)
        if outer is not None:
            sch.compute_at(block, outer, preserve_unit_loops=True)
        *own_rows, lane, chunk, reduce, four = sch.get_loops(block)[shared:]
        sch.reorder(reduce, *own_rows, *((lane, chunk) if chunks is None else (chunk, lane)), four)  # no loop of one in the call
        init = sch.decompose_reduction(block, reduce)
        *init_rows, init_lane, init_chunk = sch.get_loops(init)[shared:]
        sch.vectorize(sch.fuse(init_lane, init_chunk))
        for loop in [*own_rows, *init_rows]:
            sch.unroll(loop)
        sch.tensorize(lane, intrin.register_remainder(rem.lanes, rem.grouped, chunks)[microkernel])


def _split_off_remainder(sch, block, rem: Remainder) -> tuple:
    """Partition the lanes of ``block`` (the compute, lanes last among its spatial axes) at ``rem.base``; returns the
    block of the lanes below, its loops in their order, and the name of the block of the lanes from ``rem.base`` on:
    a copy of the remainder's sums (their calls are the remainder blocks', ``_schedule_remainder``)."""
    from tvm import s_tir, tirx

    loops = sch.get_loops(block)
    spatial = sum(iv.iter_type == tirx.IterVar.DataPar for iv in sch.get(block).iter_vars)
    lane = loops[spatial - 1]
    sch.reorder(lane, *loops[: spatial - 1])
    low, high = sch.loop_partition(lane, [rem.base, None])
    main, last = sch.get_child_blocks(low)[0], sch.get_child_blocks(high)[0]
    first, *others = sch.get_loops(main)
    sch.reorder(*others[: spatial - 1], first)
    _exact_regions(sch, main)
    # the lanes from rem.base on: a copy of the sums (a block of the spatial axes only, in place of the reduction)
    old, outer = sch.get(last), sch.get_loops(last)[0]
    store = old.body
    sums = sch.get(sch.get_sblock(rem.sums)).writes[0].source
    value = tirx.BufferLoad(sums, [*store.indices[:-1], store.indices[-1] - rem.base])
    axes = [iv for iv in old.iter_vars if iv.iter_type == tirx.IterVar.DataPar]
    new = s_tir.SBlock(axes, [], [], old.name_hint, tirx.BufferStore(store.buffer, value, store.indices))
    reads, writes = s_tir.analysis.get_sblock_read_write_region(new, {b: b for b in (store.buffer, sums)})
    new = s_tir.SBlock(axes, reads, writes, old.name_hint, new.body)
    loop_vars = [tirx.Var(f"{iv.var.name}_l", "int32") for iv in axes]
    lane = axes[-1].dom  # its loop covers all the remainder's lanes: compute_at then computes them all
    nest = s_tir.SBlockRealize(loop_vars, loop_vars[-1] < lane.min + lane.extent, new)
    extents = [iv.dom.extent for iv in axes[:-1]] + [rem.lanes]
    for iv, v, extent in reversed(list(zip(axes, loop_vars, extents))):
        nest = tirx.For(v, iv.dom.min, extent, tirx.ForKind.SERIAL, nest)
    sch.state.replace(sch.get_sref(outer), nest, {old: new})
    return main, old.name_hint


def _enclosing(sref):
    """The sref of the block that holds ``sref``'s."""
    from tvm import s_tir

    sref = sref.parent
    while not isinstance(sref.stmt, s_tir.SBlock):
        sref = sref.parent
    return sref


def _flatten(sch, scope) -> None:
    """Replace the block ``scope`` (at the root: ``loop_partition``'s common block) by the bodies of the blocks it
    holds (its partitions, blocks with no iterators): their blocks then share the root's scope, where ``compute_at``
    can move the remainder blocks among them."""
    from tvm import s_tir, tirx

    root_rv = sch.get_sblock("root")
    root, common = sch.get(root_rv), scope.stmt
    parts = common.body.seq if isinstance(common.body, tirx.SeqStmt) else [common.body]
    seq = root.body.seq if isinstance(root.body, tirx.SeqStmt) else [root.body]
    body = []
    for stmt in seq:
        held = isinstance(stmt, s_tir.SBlockRealize) and stmt.block.same_as(common)
        body += [part.block.body for part in parts] if held else [stmt]
    allocs = [*root.alloc_buffers, *common.alloc_buffers, *(b for part in parts for b in part.block.alloc_buffers)]
    new = _block_with(root, body=tirx.SeqStmt(body), alloc_buffers=allocs)
    sch.state.replace(sch.get_sref(root_rv), new, {root: new})


def _vectorize_innermost(sch, block, compute=None) -> None:
    """Vectorize the block's innermost loop by at most one zmm of int32: wider vectors (a whole
    tile row, gathered across lanes when the output is transposed) take LLVM minutes to compile.
    Not when that loop is also one of the ``compute`` block's (a write-back left with no loop of its own)."""
    loop = sch.get_loops(block)[-1]
    if compute is not None and any(sch.get(loop).same_as(sch.get(x)) for x in sch.get_loops(compute)):
        return
    extent = int(sch.get(loop).extent)
    width = max(d for d in divisors(extent) if d <= intrin.LANES)
    if width < extent:
        loop = sch.split(loop, [None, width])[1]
    sch.vectorize(loop)


def _parallel_stage(sch, block, cores: int) -> None:
    """A packing stage: outer loops fused and spread over the cores, the innermost (the 4 or 16
    elements of one group) unrolled, the one above it left as a plain loop that LLVM vectorizes.
    Fusing every outer loop instead costs a div/mod per element: 25x slower on conv2d's data."""
    loops = sch.get_loops(block)
    if len(loops) == 1:
        sch.parallel(loops[0])
        return
    outer, chunks = [], 1
    for loop in loops[:-2]:
        if chunks >= 4 * cores:
            break
        outer.append(loop)
        chunks *= int(sch.get(loop).extent)
    if outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    sch.unroll(loops[-1])


def _tile_factors(lay: Layout, point: Point) -> dict[str, list[int]]:
    """Each axis's tile factors, outer to inner, as the point's knobs ``<axis><level>`` give them."""
    return {ax.name: [point[f"{ax.name}{i}"] for i in range(ax.levels)] for ax in lay.axes}


def _quantities(lay: Layout, tiles: dict[str, list], prod) -> dict:
    """Sizes the rules and the cost model talk about, from tile factors; ``prod`` multiplies
    (CP-SAT variables when defining the space, integers when describing a point)."""
    spatial = [a for a in lay.axes if a.spatial]
    lane = next(a for a in spatial if a.inner == intrin.LANES)

    def inner(ax: Axis, first_level: int):
        return prod([*tiles[ax.name][first_level : ax.levels], ax.inner])

    def footprint(spatial_level: int):
        return sum(
            lay.itemsize[name] * prod([inner(a, spatial_level if a.spatial else 1) for a in lay.axes if a.name in used])
            for name, used in lay.uses.items()
        )

    return {
        "acc_registers": prod([tiles[a.name][3] for a in spatial]),
        "b_registers": tiles[lane.name][3],
        "l1_bytes": footprint(3),
        "l2_bytes": footprint(2) + 4 * prod([inner(a, 2) for a in spatial]),
        "parallel_chunks": prod([tiles[a.name][0] for a in spatial]),
        "reduce_sweep": prod([inner(a, 1) for a in lay.axes if not a.spatial]),
    }


def _max_register_tile(spatial: list[Axis], lane: Axis, limit: int) -> int:
    """The largest accumulator tile the shape allows within the register budget and ``limit``
    (what is left of the spatial extent once every core has a chunk)."""
    best = 1
    others = [a for a in spatial if a is not lane]
    tiles = [1]
    for a in others:
        tiles = [t * d for t in tiles for d in divisors(a.extent) if t * d < ZMM_REGISTERS]
    for j in divisors(lane.extent):
        for t in tiles:
            if t * j + j + 1 <= ZMM_REGISTERS and t * j <= limit:
                best = max(best, t * j)
    return best


def _cap(lay: Layout) -> int:
    return int(np.prod([a.extent * a.inner for a in lay.axes])) * 4


def _vars_of(args) -> set[str]:
    from tvm import tirx

    names = set()
    for a in args:
        if isinstance(a, tirx.IterVar):
            a = a.var
        if not isinstance(a, int):
            names |= {v.name for v in tirx.analysis.undefined_vars(a)}
    return names


def _recording(store, to_packed, source=None):
    """A reader of logical indices that remembers which loop variables index it."""

    def read(*idx):
        read.used |= _vars_of(idx)
        return store[to_packed(idx)] if store is not None else source(*idx)

    read.used = set()
    return read


def _layout_of(task: Task, out, read: dict) -> Layout:
    hint = task.op.dot_hint
    axes = []
    for i, iv in enumerate(out.op.axis):
        lanes = intrin.LANES if i == hint.out_lane_axis else 1
        axes.append(Axis(iv.var.name, int(iv.dom.extent) // lanes, lanes, True))
    for i, iv in enumerate(out.op.reduce_axis):
        dots = intrin.REDUCE if i == hint.reduce_axis else 1
        axes.append(Axis(iv.var.name, int(iv.dom.extent) // dots, dots, False))
    names = {a.name for a in axes}
    itemsize = {t.name: np.dtype(t.dtype).itemsize for t in task.op.tensors() if t.role != "output"}
    return Layout(tuple(axes), {n: frozenset(fn.used & names) for n, fn in read.items()}, itemsize)


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def max_divisor(n: int, limit: int) -> int:
    return max(d for d in divisors(n) if d <= limit)


def padded_extent(n: int, quality: Callable[[int], float]) -> int:
    """The extent in [n, max(n + n/8, n up to a multiple of 16)] that maximises ``quality`` (how well an
    extent tiles, 0..1) x the useful fraction n / extent; the smallest of equals (n itself when it tiles as well)."""
    return padded_extents(n, quality, 1)[0]


def padded_extents(n: int, quality: Callable[[int], float], count: int, within: float = 0.95) -> tuple[int, ...]:
    """Up to ``count`` extents ranked as ``padded_extent`` ranks them, best first, each scoring at least ``within``
    of the best and strictly below the previous one (of equals, the smallest); ``n`` alone when it tiles perfectly."""
    if quality(n) >= 1:
        return (n,)
    last = max(n + n // 8, round_up(n, 16))
    scored = sorted(((quality(e) * n / e, e) for e in range(n, last + 1)), key=lambda se: (-se[0], se[1]))
    chosen = [scored[0]]
    for score, e in scored[1:]:
        if len(chosen) == count or score < within * chosen[0][0]:
            break
        if score < chosen[-1][0]:
            chosen.append((score, e))
    return tuple(e for _, e in chosen)


def _row_axis(task: Task, out, data_uses: set[str]) -> int | None:
    """The output axis that runs along the rows of the data operand (a matrix's M, a convolution's output
    width): the last spatial axis, other than the lanes, that indexes the data operand."""
    rows = [i for i, iv in enumerate(out.op.axis) if i != task.op.dot_hint.out_lane_axis and iv.var.name in data_uses]
    return rows[-1] if rows else None


def _probe(t: TensorSpec):
    """A reader of ``t`` (padded coordinates) that records the index expressions and loop variables it is read with."""
    from tvm import te

    ph = te.placeholder(t.padded_shape, t.dtype, name=t.name)

    def read(*idx):
        read.indices.append(idx)
        read.used |= _vars_of(idx)
        return ph[idx]

    read.spec, read.indices, read.used = t, [], set()
    return read


def _read_extents(probes: dict, out, extents: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """Per operand, the extents (padded coordinates) that the compute reads once its axes run over ``extents``."""
    import tvm
    from tvm import tirx
    from tvm.sym.analyzer import Analyzer

    ana = Analyzer()
    for iv in [*out.op.axis, *out.op.reduce_axis]:
        ana.bind(iv.var, tvm.ir.Range(0, extents[iv.var.name]))
    needs = {}
    for name, probe in probes.items():
        need = list(probe.spec.padded_shape)
        for idx in probe.indices:
            for d, e in enumerate(idx):
                e = tirx.IntImm("int32", e) if isinstance(e, int) else e
                need[d] = max(need[d], int(ana.const_int_bound(e).max_value) + 1)
        needs[name] = tuple(need)
    return needs


def _zero_beyond(source, t: TensorSpec, need: tuple[int, ...]):
    """``source`` (a reader of ``t.padded_shape``) extended with zeros up to ``need``."""
    if tuple(need) == t.padded_shape:
        return source

    def read(*idx):
        from tvm import tirx

        conds = [i < n for i, n, m in zip(idx, t.padded_shape, need) if m > n]
        return tirx.if_then_else(tirx.all(*conds), source(*idx), tirx.const(0, t.dtype))

    return read


def _on_extents(out, extents: dict[str, int], name: str, init=None):
    """The compute ``out`` (one reduction) over ``extents``, its axes by name: the same body, read further
    (``init``: a function of the output indices giving the reduction's initial value, else the combiner's)."""
    from tvm import te, tirx

    red = out.op.body[0]
    raxes = [te.reduce_axis((0, extents[r.var.name]), name=r.var.name) for r in out.op.reduce_axis]

    def body(*vs):
        old = [iv.var for iv in [*out.op.axis, *out.op.reduce_axis]]
        sub = lambda e: tirx.IndexMap(old, [e], None).map_indices([*vs, *(r.var for r in raxes)])[0]  # noqa: E731
        first = red.init if init is None else [init(*vs)]
        return tirx.Reduce(red.combiner, [sub(x) for x in red.source], raxes, sub(red.condition), red.value_index, first)

    shape = [extents[iv.var.name] for iv in out.op.axis]
    return te.compute(shape, body, name=name, varargs_names=[iv.var.name for iv in out.op.axis])


def _remainder_computes(main, base: int, lanes: int):
    """The remainder blocks of ``Remainder`` for ``main`` (one reduction, lanes last and padded): partial sums per row,
    chunk and lane, the block's over reduction elements ``(kk * chunks + c) * 4 + t``, the tail's (one chunk) over the
    groups of 4 after them; ``sums`` adds them up per row and lane."""
    from tvm import te, tirx

    red = main.op.body[0]
    (k,) = main.op.reduce_axis
    *others, _ = main.op.axis
    depth = int(k.dom.extent)
    old = [iv.var for iv in [*main.op.axis, k]]
    source = lambda *values: tirx.IndexMap(old, [red.source[0]], None).map_indices(list(values))[0]  # noqa: E731
    rows = [int(iv.dom.extent) for iv in others]

    def partial(first: int, steps: int, chunks: int, name: str):
        kk = te.reduce_axis((0, steps), name="kk")
        t = te.reduce_axis((0, intrin.REDUCE), name="kt")
        return te.compute(
            (*rows, lanes, chunks),
            lambda *v: te.sum(source(*v[:-2], base + v[-2], first + (kk * chunks + v[-1]) * intrin.REDUCE + t), axis=[kk, t]),
            name=f"{main.op.name}_{name}",
        )

    chunks = intrin.LANES // lanes
    full = depth // (intrin.REDUCE * chunks)
    block = partial(0, full, chunks, "rem")
    first = full * intrin.REDUCE * chunks
    tail = partial(first, (depth - first) // intrin.REDUCE, 1, "tail") if first < depth else None
    sums = te.compute(
        (*rows, lanes),
        lambda *v: sum(block[(*v, c)] for c in range(chunks)) + (0 if tail is None else tail[(*v, 0)]),
        name=f"{main.op.name}_sums",
    )
    return block, tail, sums


def _exact_regions(sch, block) -> None:
    """Give ``block`` the regions one instance reads and writes (``loop_partition`` leaves the whole partition's, which
    tensorize does not match)."""
    from tvm import s_tir

    old = sch.get(block)
    buffers = {r.source: r.source for r in [*old.reads, *old.writes]}
    reads, writes = s_tir.analysis.get_sblock_read_write_region(old, buffers)
    new = _block_with(old, reads=reads, writes=writes)
    sch.state.replace(sch.get_sref(block), new, {old: new})


def _block_with(old, **changes):
    """A copy of the SBlock ``old`` with the fields ``changes`` names replaced."""
    from tvm import s_tir

    fields = ("iter_vars", "reads", "writes", "name_hint", "body", "init", "alloc_buffers", "match_buffers", "annotations")
    return s_tir.SBlock(*(changes.get(f, getattr(old, f)) for f in fields))


def _pack_stage(name: str, layout, source):
    from tvm import te

    return te.compute(layout.shape, lambda *p: source(*layout.logical(p)), name=f"{name}_pack")


def _prepacked(t: TensorSpec, hint) -> bool:
    return t.name == hint.weight and t.role != "input"


def blocked(reduce_dim: int, lane_dim: int) -> BlockedLayout:
    return BlockedLayout(reduce_dim=reduce_dim, lane_dim=lane_dim, lanes=intrin.LANES, reduce=intrin.REDUCE)


def weight_layout(hint) -> BlockedLayout:
    return blocked(hint.weight_reduce_dim, hint.weight_lane_dim)


@dataclass(frozen=True)
class _WeightLayout:
    """A BlockedLayout over TVM index expressions: (..., R, ..., L, ...) -> (L/lanes, *others, R/reduce,
    lanes, reduce), or (*others, L/lanes, R/reduce, lanes, reduce) when ``others_first``."""

    logical_shape: tuple[int, ...]
    blocking: BlockedLayout

    @property
    def _others(self) -> list[int]:
        b = self.blocking
        return [d for d in range(len(self.logical_shape)) if d not in (b.reduce_dim, b.lane_dim)]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.blocking.shape(self.logical_shape)

    def packed(self, idx):
        b = self.blocking
        lane, red = idx[b.lane_dim], idx[b.reduce_dim]
        others = [idx[d] for d in self._others]
        head = [*others, lane // b.lanes] if b.others_first else [lane // b.lanes, *others]
        return (*head, red // b.reduce, lane % b.lanes, red % b.reduce)

    def logical(self, p):
        b = self.blocking
        n = len(self._others)
        others, block = (p[:n], p[n]) if b.others_first else (p[1 : n + 1], p[0])
        idx = [None] * len(self.logical_shape)
        idx[b.lane_dim] = block * b.lanes + p[-2]
        idx[b.reduce_dim] = p[-3] * b.reduce + p[-1]
        for d, x in zip(self._others, others):
            idx[d] = x
        return idx


@dataclass(frozen=True)
class _DataLayout:
    """(..., R, ...) -> (..., R/4, ..., 4): each 4 reduction elements the micro-kernel broadcasts are contiguous."""

    logical_shape: tuple[int, ...]
    reduce_dim: int

    @property
    def shape(self) -> tuple[int, ...]:
        s = list(self.logical_shape)
        s[self.reduce_dim] //= intrin.REDUCE
        return (*s, intrin.REDUCE)

    def packed(self, idx):
        p = list(idx)
        p[self.reduce_dim] = idx[self.reduce_dim] // intrin.REDUCE
        return (*p, idx[self.reduce_dim] % intrin.REDUCE)

    def logical(self, p):
        idx = list(p[:-1])
        idx[self.reduce_dim] = p[self.reduce_dim] * intrin.REDUCE + p[-1]
        return idx
