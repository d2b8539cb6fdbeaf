"""Folding a small-C convolution's kernel taps into the dot's reduction (the ``fold_taps`` knob of the VNNI template).

Unfolded, the micro-kernel's 4-wide dot runs over the input channels, one kernel tap at a time: with C=3 (an
RGB stem) each tap pads its 3 channels to 4, and the ResNet-50 stem (7x7) costs 49 dots per pixel and lane
block. Two folds, each offered where it takes fewer dots (``modes``):

ROWS (1), channels-last, dilation 1: the last tap and the channels, (s, c), are S*C contiguous bytes of the
    input, read in place: the dot runs over them in groups of 4 (21 -> 24: 7 x 6 = 42 dots for the stem). A group
    that runs past the pixel's S*C bytes reads the next pixel's, times zero weights. One stage, ``x_rows``
    (N, *spatial padded, W*C): the zero-padded input with (w, c) flattened; the weight is regrouped
    (K/16, *taps but the last, S*C/4, 16, 4) by ``w_rows``.
IM2COL (2): all taps and the channels, f = (taps..., c) row-major, R*S*C = 147 -> 148: 37 dots; the data is
    gathered: ``x_pad`` (the zero-padded input, so that the gather tests no bounds), then ``x_pack``
    (N, *out, F/4, 4), the im2col rows, gathered per tile of the compute (``fold_gather_at``), the loops of one
    pixel unrolled (each tap's run of S*C contiguous bytes is a few vector moves); the weight is regrouped
    (K/16, F/4, 16, 4) by ``w_pack``. The gather costs about as much as the 12 dots it saves on the stem.

Both regroup the prepacked weight (K/16, R, S, C/4, 16, 4) inside the kernel (K*F bytes, ~10 K for the stem):
the weight passed stays the one the unfolded kernel takes (``arg_layouts`` is per task, the fold per point).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from heron_core.operator import padded
from heron_core.ops.convolution import Convolution, logical, stored
from heron_cpu_dlboost import intrin

if TYPE_CHECKING:
    from heron_core.space import SearchSpace
    from heron_core.task import Task

KNOB = "fold_taps"
GATHER_KNOB = "fold_gather_at"
NONE, ROWS, IM2COL = 0, 1, 2
AXES = {ROWS: "row_c", IM2COL: "taps_c"}  # the folded dot axis of each mode (its tile knobs: row_c0, row_c1, ...)
MAX_FOLDED = 512  # an im2col row of one pixel is unrolled: bound its code size


def dots(n: int) -> int:
    return -(-n // intrin.REDUCE)


def modes(task: Task) -> tuple[int, ...]:
    """The ``fold_taps`` values offered: NONE, and each fold of an ungrouped convolution that takes fewer dots."""
    op = task.op
    if not isinstance(op, Convolution) or op.shape.group_count != 1:
        return (NONE,)
    s = op.shape
    taps = math.prod(s.kernel_extents)
    unfolded = taps * dots(s.C)
    out = [NONE]
    if s.channels_last and s.dilation == 1 and taps // s.kernel_extents[-1] * dots(s.kernel_extents[-1] * s.C) < unfolded:
        out.append(ROWS)
    if dots(taps * s.C) < unfolded and taps * s.C <= MAX_FOLDED:
        out.append(IM2COL)
    return tuple(out)


def build(task: Task, mode: int, extents: dict[str, int], names: list[str], reduce_names: list[str], layouts):
    """The folded compute on the unfolded one's padded spatial ``extents`` (output axes ``names``, storage order;
    ``reduce_names``: the unfolded reduction axes, c then the taps, whose names the folds keep for the taps they
    leave). ``layouts``: (weight and data layouts of a shape and reduce dim, the prepacked weight's).

    Returns (args, out, read, stages): the kernel's arguments (in the operator's order), the folded dot, its
    recording readers, and the stages ``_parallel_stage`` schedules (``schedule`` the others)."""
    from tvm import te, tirx

    from heron_cpu_dlboost.context import _recording, _zero_beyond

    op, s = task.op, task.op.shape
    last = s.channels_last
    weight_layout, data_layout, packed = layouts
    x_spec, w_spec = op.tensor("x"), op.tensor("w")
    shape = [extents[n] for n in names]
    n_, k_, *out_ext = logical(tuple(shape), last)
    extra = {t.name for t in op.epilogue.tensors()} if op.epilogue else set()
    args = {t.name: te.placeholder(t.shape, t.dtype, name=t.name) for t in [*op.inputs, *op.constants] if t.name in extra}
    x = args["x"] = te.placeholder(x_spec.shape, x_spec.dtype, name="x")
    w = args["w"] = te.placeholder(packed.shape, w_spec.dtype, name="w")
    zero = lambda t: tirx.const(0, t.dtype)  # noqa: E731

    # the zero-padded input, as far as the padded output rows reach (beyond the operator's padding: zeros)
    reach = [(o - 1) * s.stride + (r - 1) * s.dilation + 1 for o, r in zip(out_ext, s.kernel_extents)]
    need = tuple(max(a, b) for a, b in zip(stored((x_spec.padded_shape[0], s.C, *reach), last), x_spec.padded_shape))
    x_padded = _zero_beyond(padded(lambda *i: x[i], x_spec), x_spec, need)

    def unravel(f, extents):
        """f -> its indices in ``extents`` (row-major)."""
        idx = []
        for e in reversed(extents):
            idx.insert(0, tirx.floormod(f, e))
            f = tirx.floordiv(f, e)
        return idx

    if mode == ROWS:
        *lead, kw = s.kernel_extents
        g = dots(kw * s.C) * intrin.REDUCE
        width = (out_ext[-1] - 1) * s.stride * s.C + g  # the last group of the last pixel
        flat = (*need[:-2], max(need[-2], -(-width // s.C)) * s.C)  # whole pixels: x_rows' loop splits by C
        x_rows = te.compute(flat, lambda *i: x_padded(*i[:-1], i[-1] // s.C, i[-1] % s.C), name="x_rows")

        def row_weight(k, *rest):
            *taps, f = rest
            return tirx.if_then_else(f < kw * s.C, w[packed.packed((k, f % s.C, *taps, f // s.C))], zero(w_spec))

        w_lay = weight_layout((k_, *lead, g), 1 + len(lead))
        w_rows = te.compute(w_lay.shape, lambda *p: row_weight(*w_lay.logical(p)), name="w_rows")
        read = {"x": _recording(x_rows, lambda idx: idx), "w": _recording(w_rows, w_lay.packed)}
        fold = te.reduce_axis((0, g), name=AXES[ROWS])
        taps = [te.reduce_axis((0, r), name=n) for r, n in zip(lead, reduce_names[1:-1])]

        def body(*idx):
            n, k, *o = logical(idx, last)
            pos = [oi * s.stride + t for oi, t in zip(o, taps)]
            xv = read["x"](n, *pos, o[-1] * s.stride * s.C + fold)
            return te.sum(xv.astype(op.acc_dtype) * read["w"](k, *taps, fold).astype(op.acc_dtype), axis=[fold, *taps])

        stages = (w_rows.op.name,)  # x_rows: ``schedule``
    else:
        f_ext = s.C * math.prod(s.kernel_extents)
        f_pad = dots(f_ext) * intrin.REDUCE
        x_pad = te.compute(need, x_padded, name="x_pad")

        def gathered(n, *rest):
            *o, f = rest
            *taps, c = unravel(f, (*s.kernel_extents, s.C))
            pos = [oi * s.stride + t * s.dilation for oi, t in zip(o, taps)]
            return tirx.if_then_else(f < f_ext, x_pad[stored((n, c, *pos), last)], zero(x_spec))

        def regrouped(k, f):
            *taps, c = unravel(f, (*s.kernel_extents, s.C))
            return tirx.if_then_else(f < f_ext, w[packed.packed((k, c, *taps))], zero(w_spec))

        x_lay = data_layout((n_, *out_ext, f_pad), len(shape) - 1)
        w_lay = weight_layout((k_, f_pad), 1)
        x_pack = te.compute(x_lay.shape, lambda *p: gathered(*x_lay.logical(p)), name="x_pack")
        w_pack = te.compute(w_lay.shape, lambda *p: regrouped(*w_lay.logical(p)), name="w_pack")
        read = {"x": _recording(x_pack, x_lay.packed), "w": _recording(w_pack, w_lay.packed)}
        fold = te.reduce_axis((0, f_pad), name=AXES[IM2COL])

        def body(*idx):
            n, k, *o = logical(idx, last)
            return te.sum(read["x"](n, *o, fold).astype(op.acc_dtype) * read["w"](k, fold).astype(op.acc_dtype), axis=fold)

        stages = (x_pad.op.name, w_pack.op.name)  # x_pack: ``schedule``
    padded_out = tuple(shape) != op.output.shape
    out = te.compute(shape, body, name="out_padded" if padded_out else "out", varargs_names=names)
    return [args[t.name] for t in [*op.inputs, *op.constants]], out, read, stages


def declare(space: SearchSpace, offered: tuple[int, ...]) -> dict[int, object]:
    """The ``fold_taps`` knob (NONE first: what the template did before the knob) and, with IM2COL,
    ``fold_gather_at``; returns each offered mode's BoolVar (exactly one is true)."""
    m = space.model
    knob = space.knob(KNOB, offered, "fold taps into the dot's reduction: 0 no, 1 (last tap, C) in place, 2 all taps (im2col)")
    is_mode = {mode: space.equals(knob, mode) for mode in offered}
    if IM2COL in offered:
        gather = space.knob(GATHER_KNOB, (0, 1), "gather the im2col rows of each parallel chunk (0) or of each S1 tile (1)")
        m.Add(gather == 0).OnlyEnforceIf(is_mode[IM2COL].Not())
    return is_mode


def present(space: SearchSpace, is_mode: dict[int, object], in_modes: list[int]):
    """A BoolVar true when the fold mode is one of ``in_modes`` (an axis that exists in those modes only)."""
    if len(in_modes) == 1:
        return is_mode[in_modes[0]]
    b = space.model.NewBoolVar("")
    space.model.Add(sum(is_mode[mode] for mode in in_modes) == b)
    return b


def split_if(space: SearchSpace, name: str, extent: int, parts: int, on, doc: str) -> list:
    """Tile knobs of an axis that exists in some fold modes only (``on``: a BoolVar, true there): their product is
    ``extent`` there and 1 elsewhere (all ones: one point per schedule)."""
    from heron_core.space import divisors

    factors = [space.knob(f"{name}{i}", divisors(extent), doc) for i in range(parts)]
    prod = space.product(factors, extent)
    space.model.Add(prod == extent).OnlyEnforceIf(on)
    space.model.Add(prod == 1).OnlyEnforceIf(on.Not())
    return factors


def schedule(sch, mode: int, channels: int, at, cores: int) -> None:
    """The stage ``build`` left: ROWS' x_rows parallel over its outer loops, its (w, c) loop split by the
    ``channels`` and those unrolled (no division per element); IM2COL's x_pack computed under the loop ``at``
    (``fold_gather_at``), the loops of one pixel unrolled: the index arithmetic folds to constants and LLVM merges
    each tap's consecutive byte copies into vector moves."""
    from heron_cpu_dlboost.context import _parallel_stage

    if mode == ROWS:
        block = sch.get_sblock("x_rows")
        sch.split(sch.get_loops(block)[-1], [None, channels])
        _parallel_stage(sch, block, cores)
        return
    block = sch.get_sblock("x_pack")
    sch.compute_at(block, at)
    loops = sch.get_loops(block)
    sch.unroll(loops[-1])
    sch.unroll(loops[-2])
