"""DepthwiseContext: the VNNI schedule of depthwise convolutions (groups = C) and its rules.

A depthwise convolution has no channel reduction to broadcast, so the micro-kernel is vpdpbusd
without a broadcast (depthwise_intrin.py): 16 lanes = 16 output channels, each a 4-tap dot.
Tensors of the kernel (K output channels, m = K / C per input channel, T = the kernel's taps):

    w       (K/16, T/4, 16, 4)          s8, packed and zero-padded ahead of the calls (TapBlockedLayout)
    x_taps  (N, K/16, *out, T/4, 4, 16) u8, gathered from x by a stage of the kernel (tap-major:
            the micro-kernel interleaves each 4 x 16 block with one shuffle): tap t of lane l at
            output o = x[n, (16b + l) / m, o * stride + tap(t) * dilation - pad],
            zero for padding (taps >= T and channels >= K read the last one: their weights are zero)
    acc     (N, K/16, *out, 16)         s32, the micro-kernel's accumulators
    out     the operator's output (N, K, *out or N, *out, K), copied from acc

so channel counts that are not multiples of 16 and tap counts that are not multiples of 4 are
padded inside the kernel. Loop structure of ``acc`` (spatial axes n, K/16, *out; reduction T/4):

    [S0 fused, parallel] [S1] [R0] [S2] [R1] [S3 unrolled] [16 channels x 4 taps: vpdpbusd]

``x_taps`` is computed where ``pack_level`` says (0: whole, ahead of the nest; 1: per S0 chunk;
2: per S1 tile; 3: per R1 sweep), so it is produced in cache just before it is read; ``out`` is
written back after each S0 chunk or S1 tile (``out_level``).

That is the ``kernel`` knob's TAPS. ROWS and DIRECT (``_compute_padded``) pad the input once per tile
instead of gathering taps per output, and read each input row from L1 for every tap and output of a
register tile: 4-tap vpdpbusd dots on 4 pixels of one row, or int16 madds (DEVELOPERS.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from heron_core.layout import TapBlockedLayout
from heron_core.space import Point, SearchSpace
from heron_core.target import Context
from heron_cpu_dlboost import depthwise_intrin
from heron_cpu_dlboost.context import (
    MIN_CHAINS,
    REDUCE_LEVELS,
    SPATIAL_LEVELS,
    UNROLL_STEPS,
    ZMM_REGISTERS,
    _vectorize_innermost,
    parallel_rule,
)
from heron_cpu_dlboost.intrin import LANES, REDUCE

if TYPE_CHECKING:
    from heron_core.task import Task
    from heron_cpu_dlboost.target import DLBoostTarget

TILE_BYTES = LANES * REDUCE  # one micro-kernel operand: 64 bytes
TAPS, ROWS, DIRECT = 0, 1, 2  # the ``kernel`` knob's values (TAPS first: what records without the knob ran)


def is_depthwise(task: Task) -> bool:
    """A convolution with one input channel per group (what DepthwiseContext schedules)."""
    return bool(getattr(task.op.shape, "depthwise", False))


@dataclass(frozen=True)
class DepthwiseShape:
    spatial: tuple[tuple[str, int], ...]  # (name, extent) of n, the channel blocks, the output pixels
    tap_groups: int
    taps: int
    blocks: int

    @classmethod
    def of(cls, task: Task) -> DepthwiseShape:
        s = task.op.shape
        taps = math.prod(s.kernel_extents)
        blocks = -(-s.K // LANES)
        pixels = [(f"o{i}", e) for i, e in enumerate(s.out_extents)]
        return cls((("n", s.N), ("b", blocks), *pixels), -(-taps // REDUCE), taps, blocks)


class DepthwiseContext(Context):
    def __init__(self, target: DLBoostTarget):
        self.target = target

    def arg_layouts(self, task: Task) -> dict[str, TapBlockedLayout]:
        return {"w": TapBlockedLayout(lanes=LANES, reduce=REDUCE)}

    # --- the compute ----------------------------------------------------------------------
    def _compute(self, task: Task):
        from tvm import te, tirx

        op, s = task.op, task.op.shape
        shape = DepthwiseShape.of(task)
        last, mult = s.channels_last, s.K // s.C
        outs, kernel, ins = s.out_extents, s.kernel_extents, s.in_extents
        x = te.placeholder(op.tensor("x").shape, op.tensor("x").dtype, name="x")
        w = te.placeholder(TapBlockedLayout(lanes=LANES, reduce=REDUCE).shape(op.tensor("w").shape), "int8", name="w")

        def gather(n, b, *rest):
            o, (g, j, lane) = rest[:-3], rest[-3:]
            # Padded channels and taps meet zero weights: any in-bounds value will do, so their index
            # is clamped rather than tested (a test on the lane would keep the gather from vectorizing).
            k = tirx.min(b * LANES + lane, s.K - 1) if s.K % LANES else b * LANES + lane
            t = tirx.min(g * REDUCE + j, shape.taps - 1) if shape.taps % REDUCE else g * REDUCE + j
            taps, conds = [], []
            for extent in reversed(kernel):  # row-major taps: the last kernel dimension varies fastest
                taps.insert(0, tirx.floormod(t, extent))
                t = tirx.floordiv(t, extent)
            pos = [oi * s.stride + r * s.dilation - s.pad for oi, r in zip(o, taps)]
            if s.pad:
                conds += [p >= 0 for p in pos] + [p < e for p, e in zip(pos, ins)]
            c = k if mult == 1 else tirx.floordiv(k, mult)
            idx = (n, *pos, c) if last else (n, c, *pos)
            return tirx.if_then_else(tirx.all(*conds), x[idx], tirx.const(0, x.dtype)) if conds else x[idx]

        xt = te.compute((s.N, shape.blocks, *outs, shape.tap_groups, REDUCE, LANES), gather, name="x_taps")
        g = te.reduce_axis((0, shape.tap_groups), name="g")
        j = te.reduce_axis((0, REDUCE), name="j")

        def dot(n, b, *rest):
            o, lane = rest[:-1], rest[-1]
            return te.sum(xt[(n, b, *o, g, j, lane)].astype("int32") * w[b, g, lane, j].astype("int32"), axis=[g, j])

        acc = te.compute((s.N, shape.blocks, *outs, LANES), dot, name="acc")
        return _with_logical_output(op, acc, x, w, last)

    def _compute_padded(self, task: Task, kernel: int):
        """The DIRECT and ROWS kernels, both on x_pad (u8, zero-padded, 16 channels a row; channel
        block b's window of the input):

        DIRECT: acc[n, b, *o, l] = sum over taps of x_pad times w_taps (the weights widened to int16,
            one row of 16 channels per tap): vpmaddwd + vpaddd, weights in registers.
        ROWS:   acc = sum over the other kernel dimensions and the groups of 4 taps of the last one of a
            vpdpbusd whose 4 taps are 4 pixels of one x_pad row (o_last * stride + (4g + j) * dilation),
            interleaved by the micro-kernel (two loads and a vpermt2b), times w_rows (the weights
            regrouped per row of the kernel, zero past its end; x_pad is widened to match).
        """
        from tvm import te, tirx

        op, s = task.op, task.op.shape
        shape = DepthwiseShape.of(task)
        last, mult = s.channels_last, s.K // s.C
        outs, kernel_extents, ins = s.out_extents, s.kernel_extents, s.in_extents
        groups = -(-kernel_extents[-1] // REDUCE)
        x = te.placeholder(op.tensor("x").shape, op.tensor("x").dtype, name="x")
        w = te.placeholder(TapBlockedLayout(lanes=LANES, reduce=REDUCE).shape(op.tensor("w").shape), "int8", name="w")
        window = [(o - 1) * s.stride + (k - 1) * s.dilation + 1 for o, k in zip(outs, kernel_extents)]
        if kernel == ROWS:  # room for the last dimension's padding taps (zero weights)
            window[-1] = (outs[-1] - 1) * s.stride + (groups * REDUCE - 1) * s.dilation + 1

        def pad(n, b, *rest):
            pos, lane = [p - s.pad for p in rest[:-1]], rest[-1]
            k = tirx.min(b * LANES + lane, s.K - 1) if s.K % LANES else b * LANES + lane
            c = k if mult == 1 else tirx.floordiv(k, mult)
            conds = [p >= 0 for p in pos] if s.pad else []
            conds += [p < e for p, e, extent in zip(pos, ins, window) if extent - s.pad > e]
            if not conds:
                return x[(n, *pos, c) if last else (n, c, *pos)]
            # A select on a clamped (always valid) position vectorizes; if_then_else would load per byte.
            pos = [tirx.max(tirx.min(p, e - 1), 0) for p, e in zip(pos, ins)]
            return tirx.Select(tirx.all(*conds), x[(n, *pos, c) if last else (n, c, *pos)], tirx.const(0, x.dtype))

        xp = te.compute((s.N, shape.blocks, *window, LANES), pad, name="x_pad")

        def flat_tap(rs):
            t = 0
            for r, e in zip(rs, kernel_extents):
                t = t * e + r
            return t

        if kernel == DIRECT:
            wt = te.compute(
                (shape.blocks, shape.taps, LANES),
                lambda b, t, lane: w[b, t // REDUCE, lane, t % REDUCE].astype("int16"),
                name="w_taps",
            )
            rs = [te.reduce_axis((0, e), name=f"r{i}") for i, e in enumerate(kernel_extents)]

            def dot(n, b, *rest):
                o, lane = rest[:-1], rest[-1]
                pos = [oi * s.stride + r * s.dilation for oi, r in zip(o, rs)]
                return te.sum(xp[(n, b, *pos, lane)].astype("int32") * wt[b, flat_tap(rs), lane].astype("int32"), axis=rs)

        else:
            others = kernel_extents[:-1]

            def regroup(b, *rest):
                r, (g, lane, j) = rest[:-3], rest[-3:]
                col = g * REDUCE + j
                t = flat_tap([*r, tirx.min(col, kernel_extents[-1] - 1)])
                return tirx.Select(col < kernel_extents[-1], w[b, t // REDUCE, lane, t % REDUCE], tirx.const(0, "int8"))

            wr = te.compute((shape.blocks, *others, groups, LANES, REDUCE), regroup, name="w_rows")

            rs = [te.reduce_axis((0, e), name=f"r{i}") for i, e in enumerate(others)]
            g = te.reduce_axis((0, groups), name="g")
            j = te.reduce_axis((0, REDUCE), name="j")

            def dot(n, b, *rest):
                o, lane = rest[:-1], rest[-1]
                pos = [oi * s.stride + r * s.dilation for oi, r in zip(o[:-1], rs)]
                col = o[-1] * s.stride + (g * REDUCE + j) * s.dilation
                data = xp[(n, b, *pos, col, lane)].astype("int32")
                return te.sum(data * wr[(b, *rs, g, lane, j)].astype("int32"), axis=[*rs, g, j])

        acc = te.compute((s.N, shape.blocks, *outs, LANES), dot, name="acc")
        return _with_logical_output(op, acc, x, w, last)

    def _apply_padded(self, task: Task, point: Point):
        import tvm
        from tvm import s_tir

        kernel = point["kernel"]
        shape = DepthwiseShape.of(task)
        factors = _tile_factors(shape, point)
        sch = s_tir.Schedule(tvm.IRModule({"main": self._compute_padded(task, kernel)}))
        block = sch.get_sblock("acc")
        *loops, lane = sch.get_loops(block)[: len(shape.spatial) + 1]
        rs = sch.get_loops(block)[len(shape.spatial) + 1 :]
        if kernel == ROWS:
            *rs, j = rs
        names = [n for n, _ in shape.spatial]
        tiles = {n: sch.split(loop, factors[n]) for n, loop in zip(names, loops)}
        s = lambda lvl: [tiles[n][lvl] for n in names]  # noqa: E731
        sch.reorder(*s(0), *s(1), *s(2), *rs, *s(3), lane)
        sch.set_scope(block, 0, "local")
        out = sch.get_sblock("out")
        sch.reverse_compute_at(out, s(2)[-1])
        pack_at = {1: s(0)[-1], 2: s(1)[-1], 3: s(2)[-1]}.get(point["pack_level"])
        if pack_at is not None:
            sch.compute_at(sch.get_sblock("x_pad"), pack_at)
        sch.vectorize(sch.get_loops(sch.get_sblock("x_pad"))[-1])
        outer = sch.fuse(*s(0))
        sch.parallel(outer)
        for loop in [*rs, *s(3)]:
            sch.unroll(loop)
        if point["unroll"]:
            sch.annotate(outer, "pragma_auto_unroll_max_step", point["unroll"])
            sch.annotate(outer, "pragma_unroll_explicit", 1)
        _vectorize_innermost(sch, out)
        if kernel == DIRECT:
            sch.vectorize(sch.get_loops(sch.get_sblock("w_taps"))[-1])
            sch.vectorize(lane)
            init = sch.decompose_reduction(block, rs[0])
        else:
            depthwise_intrin.register()
            init = sch.decompose_reduction(block, rs[0])
            sch.tensorize(lane, depthwise_intrin.ROWS_NAMES[self.target.params.microkernel])
        sch.vectorize(sch.get_loops(init)[-1])
        return sch.mod

    # --- the template and its rules -----------------------------------------------------------
    def define(self, task: Task, space: SearchSpace) -> None:
        shape = DepthwiseShape.of(task)
        m = space.model
        tiles = {
            name: space.split(name, e, SPATIAL_LEVELS, f"spatial tile factors of {name} (outer to inner)")
            for name, e in shape.spatial
        }
        tiles["g"] = space.split("g", shape.tap_groups, REDUCE_LEVELS, "tile factors of the 4-tap groups (outer to inner)")
        space.knob(
            "pack_level",
            (0, 1, 2, 3),
            "stage the input (x_taps or x_pad) whole (0), per S0 chunk (1), per S1 tile (2) or innermost (3)",
        )
        space.knob("out_level", (1, 2), "write the accumulators to the output after each S0 chunk (1) or S1 tile (2)")
        space.knob("unroll", UNROLL_STEPS, "auto-unroll max step on the kernel body")
        kernel = space.knob(
            "kernel",
            (TAPS, ROWS, DIRECT),
            "4-tap vpdpbusd dots on taps gathered per output (0) or on the rows of a padded input (1), "
            "or int16 madds on the padded input (2)",
        )
        total = math.prod(e for _, e in shape.spatial)
        cap = total * shape.tap_groups * TILE_BYTES * 4
        q = _quantities(tiles, lambda xs: space.product(xs, cap))
        cores = self.target.cores
        parallel = total >= cores and cores > 1
        uses = {value: space.equals(kernel, value) for value in (TAPS, ROWS, DIRECT)}
        padded = uses[TAPS].Not()
        if task.op.shape.dilation > 1:  # ROWS' 4 taps would be every other pixel: no (4, 16) block to tensorize
            m.Add(kernel != ROWS)
        # Registers: the S3 accumulator tile and a channel block's weight vectors (TAPS: one, its
        # data operand is read from memory; DIRECT: one per tap; ROWS: one per row and tap group),
        # and enough accumulators to hide the latency: a vpdpbusd chain takes 4-5 cycles, DIRECT's
        # chains are its 1-cycle vpaddds (a few suffice).
        s = task.op.shape
        row_weights = math.prod(s.kernel_extents[:-1]) * -(-s.kernel_extents[-1] // REDUCE)
        weights = {TAPS: 1, DIRECT: min(shape.taps, 16), ROWS: min(row_weights, 16)}
        largest = _max_register_tile(shape, total // cores if parallel else total)
        for value, on in uses.items():
            m.Add(q["acc_registers"] + weights[value] * q["b_registers"] + (value != TAPS) <= ZMM_REGISTERS).OnlyEnforceIf(on)
            chains = MIN_CHAINS // 2 if value == DIRECT else MIN_CHAINS
            m.Add(q["acc_registers"] >= min(chains, largest)).OnlyEnforceIf(on)
        m.Add(q["l1_bytes"] <= self.target.l1_bytes)
        m.Add(q["l2_bytes"] <= self.target.l2_bytes)
        # DIRECT and ROWS reduce over all taps in registers (no tap tiles) and write each register
        # tile out as it finishes: they ignore g0, g1 and out_level, which are left free (tied to one
        # value, they would leave these kernels a small share of the random samples).
        # The staged input of one tile stays in L2 until it is read (pack_level >= 1); the padded
        # input of an S2 tile (read once per tap) in L1.
        windows = _windows(task, tiles, space)
        level = space.knobs["pack_level"].var
        for lvl in (1, 2, 3):
            on = space.equals(level, lvl)
            m.Add(q[f"pack_bytes_{lvl}"] <= self.target.l2_bytes).OnlyEnforceIf([on, uses[TAPS]])
            m.Add(windows[lvl] <= self.target.l2_bytes).OnlyEnforceIf([on, uses[TAPS].Not()])
        m.Add(windows[3] <= self.target.l1_bytes).OnlyEnforceIf(padded)
        if parallel:
            parallel_rule(space, q["parallel_chunks"], cores)

    def features(self, task: Task, point: Point) -> dict[str, float]:
        shape = DepthwiseShape.of(task)
        tiles = _tile_factors(shape, point)
        q = _quantities(tiles, math.prod)
        for lvl in range(SPATIAL_LEVELS):
            q[f"spatial_tile_{lvl}"] = math.prod(tiles[n][lvl] for n, _ in shape.spatial)
        q["chunks_per_core"] = q["parallel_chunks"] / self.target.cores
        q["balanced"] = float(q["parallel_chunks"] % self.target.cores == 0)
        return {k: float(v) for k, v in q.items()}

    def apply(self, task: Task, point: Point):
        import tvm
        from tvm import s_tir

        if point["kernel"] != TAPS:
            return self._apply_padded(task, point)
        depthwise_intrin.register()
        shape = DepthwiseShape.of(task)
        sch = s_tir.Schedule(tvm.IRModule({"main": self._compute(task)}))
        block = sch.get_sblock("acc")
        factors = _tile_factors(shape, point)
        *loops, lane, g, j = sch.get_loops(block)
        names = [n for n, _ in shape.spatial]
        tiles = {n: sch.split(loop, factors[n]) for n, loop in zip(names, loops)}
        tiles["g"] = sch.split(g, factors["g"])
        s = lambda lvl: [tiles[n][lvl] for n in names]  # noqa: E731
        r0, r1 = tiles["g"]
        r0_empty = factors["g"][0] == 1
        middle = [*s(2), r0] if r0_empty else [r0, *s(2)]
        sch.reorder(*s(0), *s(1), *middle, r1, *s(3), lane, j)

        out = sch.get_sblock("out")
        sch.reverse_compute_at(out, (s(0) if point["out_level"] == 1 else s(1))[-1])
        xt = sch.get_sblock("x_taps")
        pack_at = {1: s(0)[-1], 2: s(1)[-1], 3: middle[-1]}.get(point["pack_level"])
        if pack_at is not None:
            sch.compute_at(xt, pack_at)
        outer = sch.fuse(*s(0))
        sch.parallel(outer)
        for loop in s(3):
            sch.unroll(loop)
        if point["unroll"]:
            sch.annotate(outer, "pragma_auto_unroll_max_step", point["unroll"])
            sch.annotate(outer, "pragma_unroll_explicit", 1)
        _vectorize_innermost(sch, out)
        _gather_by_tap(sch, xt, self.target.cores if pack_at is None else 0)
        init = sch.decompose_reduction(block, r0)
        sch.vectorize(sch.get_loops(init)[-1])
        sch.tensorize(lane, depthwise_intrin.NAMES[self.target.params.microkernel])
        return sch.mod


def _with_logical_output(op, acc, x, w, last: bool):
    """The PrimFunc (x, w) -> out, the output copied from the channel-blocked accumulator ``acc``
    (N, K/16, *out, 16) into the operator's layout (channels last or first)."""
    from tvm import te

    def copy(*idx):
        n, k, o = (idx[0], idx[-1], idx[1:-1]) if last else (idx[0], idx[1], idx[2:])
        return acc[(n, k // LANES, *o, k % LANES)]

    out = te.compute(op.output.shape, copy, name="out")
    return te.create_prim_func([x, w, out])


def _gather_by_tap(sch, block, cores: int) -> None:
    """The gather's tap loops unrolled (each tap's offsets and padding test become constants), the
    16 lanes vectorized: one 16-byte row of a channels-last input per tap, instead of a div/mod and
    a bounds test per byte. ``cores``: spread the outer loops over them (a gather ahead of the nest)."""
    *outer, g, j, lane = sch.get_loops(block)
    if cores:
        chunks, fused = 1, []
        for loop in outer:
            if chunks >= 4 * cores:
                break
            fused.append(loop)
            chunks *= int(sch.get(loop).extent)
        sch.parallel(sch.fuse(*fused) if len(fused) > 1 else fused[0])
    sch.unroll(g)
    sch.unroll(j)
    sch.vectorize(lane)


def _tile_factors(shape: DepthwiseShape, point: Point) -> dict[str, list[int]]:
    tiles = {n: [point[f"{n}{i}"] for i in range(SPATIAL_LEVELS)] for n, _ in shape.spatial}
    tiles["g"] = [point[f"g{i}"] for i in range(REDUCE_LEVELS)]
    return tiles


def _quantities(tiles: dict[str, list], prod) -> dict:
    """Sizes the rules and the cost model talk about; ``prod`` multiplies (CP-SAT variables or ints)."""
    spatial = [n for n in tiles if n != "g"]

    def pixels(first: int):  # output positions x channel blocks of one tile from level ``first`` down
        return prod([t for n in spatial for t in tiles[n][first:]])

    def weight_blocks(first: int):
        return prod(tiles["b"][first:])

    sweep = tiles["g"][1]
    all_taps = prod(tiles["g"])
    return {
        "acc_registers": prod([tiles[n][3] for n in spatial]),
        "b_registers": tiles["b"][3],
        # one R1 sweep: its gathered taps and weights; one S2 x R1 block: the same plus its accumulators
        "l1_bytes": TILE_BYTES * prod([pixels(3), sweep]) + TILE_BYTES * prod([weight_blocks(3), sweep]),
        "l2_bytes": TILE_BYTES * prod([pixels(2), sweep]) + TILE_BYTES * prod([weight_blocks(2), sweep]) + TILE_BYTES * pixels(2),
        "pack_bytes_1": TILE_BYTES * prod([pixels(1), all_taps]),
        "pack_bytes_2": TILE_BYTES * prod([pixels(2), all_taps]),
        "pack_bytes_3": TILE_BYTES * prod([pixels(3), sweep]),
        "parallel_chunks": prod([tiles[n][0] for n in spatial]),
    }


def _windows(task: Task, tiles: dict[str, list], space: SearchSpace) -> dict[int, object]:
    """Bytes of the padded input (x_pad, 16 channels a row) that one tile at each level 1..3 reads."""
    s = task.op.shape
    out = {}
    for lvl in (1, 2, 3):
        extents = [space.product(tiles["n"][lvl:], s.N), space.product(tiles["b"][lvl:], s.K)]
        for i, (o, k) in enumerate(zip(s.out_extents, s.kernel_extents)):
            span = space.product(tiles[f"o{i}"][lvl:], o)
            extent = space.var(1, o * s.stride + (k - 1) * s.dilation)
            space.model.Add(extent == span * s.stride + (k - 1) * s.dilation)
            extents.append(extent)
        hi = LANES * s.N * s.K * math.prod(o * s.stride + k * s.dilation for o, k in zip(s.out_extents, s.kernel_extents))
        out[lvl] = space.product([LANES, *extents], hi)
    return out


def _max_register_tile(shape: DepthwiseShape, limit: int) -> int:
    """The largest accumulator tile the shape allows within the register budget and ``limit``."""
    from heron_core.space import divisors

    tiles = {1}
    for name, extent in shape.spatial:
        tiles = {t * d for t in tiles for d in divisors(extent) if t * d < ZMM_REGISTERS}
    return max(t for t in tiles if t <= limit and t + 1 <= ZMM_REGISTERS) if any(t <= limit for t in tiles) else 1
