"""The tap fold of a convolution with few input channels (the ``fold_taps`` knob of the VNNI template).

Unfolded, the micro-kernel's 4-wide dot runs over the input channels, one kernel tap at a time: with C=3 (an
RGB stem) each tap pads its 3 channels to 4, and the ResNet-50 stem (7x7) costs 49 dots per pixel and lane
block. Folded, one reduction runs over f = (taps..., c) in row-major order, R*S*C = 147 padded to 4 once:
37 dots. The kernel gathers the operands of the folded dot in stages:

    x_pad   (N, *spatial padded, C)   the input zero-padded (no bounds tests below), stored as x is
    x_pack  (N, *out, F/4, 4)         the im2col rows, gathered per tile of the compute (``fold_gather_at``),
                                      the loops of one pixel unrolled: each tap's run of S*C contiguous bytes
                                      (channels-last) is a few vector moves
    w_pack  (K/16, F/4, 16, 4)        the prepacked weight (K/16, R, S, C/4, 16, 4) regrouped (K*F bytes)
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
AXIS = "folded"  # the folded reduction axis (its tile knobs: folded0, folded1)
MAX_FOLDED = 512  # the im2col row of one pixel is unrolled: bound its code size


def folded_extent(task: Task) -> int:
    """F: the reduction of the folded dot, taps x channels."""
    s = task.op.shape
    return s.C * math.prod(s.kernel_extents)


def offered(task: Task) -> bool:
    """Whether the fold is a choice: a dense (ungrouped) convolution whose folded reduction takes fewer dots
    than the taps' one each (C not a multiple of 4), and short enough to unroll."""
    op = task.op
    if not isinstance(op, Convolution) or op.shape.group_count != 1 or op.dot_hint.reduce_axis != 0:
        return False
    f = folded_extent(task)
    dots = -(-f // intrin.REDUCE)
    return dots < math.prod(op.shape.kernel_extents) * -(-op.shape.C // intrin.REDUCE) and f <= MAX_FOLDED


def build(task: Task, extents: dict[str, int], names: list[str], weight_layout, data_layout, weight_packed):
    """The folded compute on the unfolded one's padded spatial ``extents`` (output axes ``names``, storage order).

    Returns (args, out, read, stages): the kernel's arguments (x, the prepacked weight, then the epilogue's),
    the folded dot, its recording readers and its stages (see the module's docstring)."""
    from tvm import te, tirx

    from heron_cpu_dlboost.context import _recording, _zero_beyond

    op, s = task.op, task.op.shape
    last, rank = s.channels_last, 2 + len(s.spatial)
    x_spec, w_spec = op.tensor("x"), op.tensor("w")
    f_ext = folded_extent(task)
    f_pad = -(-f_ext // intrin.REDUCE) * intrin.REDUCE
    shape = [extents[n] for n in names]
    n_, k_, *out_ext = logical(tuple(shape), last)
    extra = {t.name for t in op.epilogue.tensors()} if op.epilogue else set()
    args = {t.name: te.placeholder(t.shape, t.dtype, name=t.name) for t in [*op.inputs, *op.constants] if t.name in extra}
    x = te.placeholder(x_spec.shape, x_spec.dtype, name="x")
    w = te.placeholder(weight_packed.shape, w_spec.dtype, name="w")

    # x_pad: as far as the padded output rows reach (beyond the operator's padding: zeros)
    reach = [(o - 1) * s.stride + (r - 1) * s.dilation + 1 for o, r in zip(out_ext, s.kernel_extents)]
    need = stored((x_spec.padded_shape[0], s.C, *reach), last)
    need = tuple(max(a, b) for a, b in zip(need, x_spec.padded_shape))
    x_pad = te.compute(need, _zero_beyond(padded(lambda *i: x[i], x_spec), x_spec, need), name="x_pad")

    def unravel(f):
        """f -> (c, taps...): f = (taps..., c) row-major."""
        c, rest = tirx.floormod(f, s.C), tirx.floordiv(f, s.C)
        taps = []
        for r in reversed(s.kernel_extents):
            taps.insert(0, tirx.floormod(rest, r))
            rest = tirx.floordiv(rest, r)
        return c, taps

    def gathered(n, *rest):
        *o, f = rest
        c, taps = unravel(f)
        pos = [oi * s.stride + t * s.dilation for oi, t in zip(o, taps)]
        return tirx.if_then_else(f < f_ext, x_pad[stored((n, c, *pos), last)], tirx.const(0, x_spec.dtype))

    def regrouped(k, f):
        c, taps = unravel(f)
        return tirx.if_then_else(f < f_ext, w[weight_packed.packed((k, c, *taps))], tirx.const(0, w_spec.dtype))

    x_lay = data_layout((n_, *out_ext, f_pad), rank - 1)
    w_lay = weight_layout((k_, f_pad))
    x_pack = te.compute(x_lay.shape, lambda *p: gathered(*x_lay.logical(p)), name="x_pack")
    w_pack = te.compute(w_lay.shape, lambda *p: regrouped(*w_lay.logical(p)), name="w_pack")
    read = {"x": _recording(x_pack, x_lay.packed), "w": _recording(w_pack, w_lay.packed)}
    fold = te.reduce_axis((0, f_pad), name=AXIS)

    def body(*idx):
        n, k, *o = logical(idx, last)
        acc = op.acc_dtype
        return te.sum(read["x"](n, *o, fold).astype(acc) * read["w"](k, fold).astype(acc), axis=fold)

    padded_out = tuple(shape) != op.output.shape
    out = te.compute(shape, body, name="out_padded" if padded_out else "out", varargs_names=names)
    ordered = [x if t.name == "x" else w if t.name == "w" else args[t.name] for t in [*op.inputs, *op.constants]]
    return ordered, out, read, (x_pad.op.name, w_pack.op.name)  # x_pack: ``schedule_gather``


def declare(space: SearchSpace) -> object:
    """The ``fold_taps`` knob (0 first: what the template did before the knob); returns a BoolVar, true when folded."""
    m = space.model
    knob = space.knob(KNOB, (0, 1), "fold the kernel taps into the dot's reduction through an im2col stage (C % 4 != 0)")
    folded = m.NewBoolVar("folded")
    m.Add(knob == 1).OnlyEnforceIf(folded)
    m.Add(knob == 0).OnlyEnforceIf(folded.Not())
    gather = space.knob(GATHER_KNOB, (0, 1), "gather the im2col rows of each parallel chunk (0) or of each S1 tile (1)")
    m.Add(gather == 0).OnlyEnforceIf(folded.Not())
    return folded


def split_if(space: SearchSpace, name: str, extent: int, parts: int, on, doc: str) -> list:
    """Tile knobs of an axis that exists on one side of the fold only (``on``: a BoolVar, or its negation):
    their product is ``extent`` there and 1 on the other side (all ones: one point per schedule)."""
    from heron_core.space import divisors

    factors = [space.knob(f"{name}{i}", divisors(extent), doc) for i in range(parts)]
    prod = space.product(factors, extent)
    space.model.Add(prod == extent).OnlyEnforceIf(on)
    space.model.Add(prod == 1).OnlyEnforceIf(on.Not())
    return factors


def schedule_gather(sch, at) -> None:
    """x_pack computed under the loop ``at`` (``GATHER_KNOB``: the rows of one tile, gathered while they are in
    cache), the loops of one pixel unrolled: the index arithmetic folds to constants and LLVM merges each tap's
    consecutive byte copies into vector moves."""
    block = sch.get_sblock("x_pack")
    sch.compute_at(block, at)
    loops = sch.get_loops(block)
    sch.unroll(loops[-1])
    sch.unroll(loops[-2])
