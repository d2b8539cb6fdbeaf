"""Every supported operator seen as a batched GEMM C[b, m, n] = sum_k A[b, m, k] . B[b, k, n].

The Tensor Core template schedules this GEMM; a view says how A and B are read from the
operator's arguments and where each output element lives. B is staged either as B[k, n] (rows
along n, ``b_layout`` "kn") or transposed, as B^T[n, k] (rows along the reduction, "nk": what
operands contiguous along k want, loaded as col-major wmma fragments).

Convolutions are implicit GEMMs in channels-last storage (the issue's NHWC): the activation is
taken as N, *spatial, C and the weight as K, *kernel, C (``layouts``, packed by the runner and by
exported libraries before a call, as an NHWC framework holds them), so both operands are
contiguous along the reduction (taps, C): M = output channels (A = weight rows), N = output
pixels (B^T = the im2col rows, gathered while staged into shared memory, 8 channels = 16 bytes
per load when C is a multiple of 8; a zero-padding test is the same for all of them), K = taps x C.
The GEMM's C[k, image x pixel] is staged through shared memory into the NKPQ output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import gcd, prod
from typing import Callable

from heron_core.layout import BlockedLayout
from heron_core.operator import Operator, TensorSpec, padded

FRAG_ALIGN = 16  # GEMM extents are padded to multiples of this (the fragments' common multiple)
TILE_ALIGNS = (128, 64, 32)  # M and N are padded further, to a multiple of the first of these ...
MAX_PAD_WASTE = 0.03  # ... that costs at most this fraction of the extent: block tiles must divide it
MAX_VEC = 8  # 8 x fp16 = 16 bytes: the widest load, and what cp.async copies at most
MAX_COMPUTED_VEC = 4  # an operand computed from a comparison (scan's mask): CUDA has no 8-lane bool vector type

Reader = Callable[..., object]


@dataclass(frozen=True)
class GemmView:
    batch: int
    M: int
    N: int
    K: int
    a: Callable[[dict[str, Reader], object, object, object], object]  # (readers, b, m, k) -> A[b, m, k]
    b: Callable[[dict[str, Reader], object, object, object], object]  # (readers, b, k, n) -> B[b, k, n]
    out: Callable[..., tuple]  # output's logical indices -> (b, m, n)
    direct: bool  # the output *is* C[b, m, n] (same shape but a unit batch): fragments are stored straight to it
    vec_a: int  # widest aligned contiguous run of A along k in the argument (1: gathered element by element)
    vec_b: int  # the same for B along n ("kn") or along k ("nk")
    b_layout: str = "kn"  # how B is staged in shared memory: B[k, n] ("kn") or B^T[n, k] ("nk")
    layouts: dict[str, BlockedLayout] = field(default_factory=dict)  # arguments taken in another storage layout

    @property
    def padded(self) -> tuple[int, int, int]:
        return _tile_padded(self.M), _tile_padded(self.N), _round_up(self.K, FRAG_ALIGN)

    @property
    def needs_padding(self) -> bool:
        return self.padded != (self.M, self.N, self.K)


def _round_up(x: int, align: int) -> int:
    return -(-x // align) * align


def _tile_padded(x: int) -> int:
    """x rounded up so that block tiles up to 128 wide can divide it, where that wastes little
    (784 output pixels allow only 16-wide tiles, 832 allow 64-wide ones)."""
    for align in TILE_ALIGNS:
        if _round_up(x, align) - x <= MAX_PAD_WASTE * x:
            return _round_up(x, align)
    return _round_up(x, FRAG_ALIGN)


def _vec(contiguous_extent: int) -> int:
    return gcd(contiguous_extent, MAX_VEC)


def _unravel(i, extents: tuple[int, ...]) -> list:
    """Flat index -> indices over ``extents`` (row-major); ``i`` is in range, so the outermost
    index needs no modulo (which keeps a one-tap kernel's weight index a plain ramp)."""
    out = []
    for e in reversed(extents[1:]):
        out.append(i % e if e > 1 else 0)
        i = i // e if e > 1 else i
    return [i, *out[::-1]]


def view_of(op: Operator) -> GemmView:
    if op.name not in VIEWS:
        raise KeyError(op.name)
    return VIEWS[op.name](op)


def _gemm(op) -> GemmView:
    s = op.shape
    return GemmView(
        1, s.M, s.N, s.K,
        a=lambda r, b, m, k: r["A"](m, k),
        b=lambda r, b, k, n: r["B"](k, n),
        out=lambda i, j: (0, i, j),
        direct=True, vec_a=_vec(s.K), vec_b=_vec(s.N),
    )  # fmt: skip


def _dense(op) -> GemmView:
    s = op.shape
    return GemmView(
        1, s.M, s.N, s.K,
        a=lambda r, b, m, k: r["A"](m, k),
        b=lambda r, b, k, n: r["B"](n, k),
        out=lambda i, j: (0, i, j),
        direct=True, vec_a=_vec(s.K), vec_b=_vec(s.K), b_layout="nk",
    )  # fmt: skip


def _bmm(op) -> GemmView:
    s = op.shape
    return GemmView(
        s.batch, s.M, s.N, s.K,
        a=lambda r, b, m, k: r["A"](b, m, k),
        b=lambda r, b, k, n: r["B"](b, k, n),
        out=lambda b, i, j: (b, i, j),
        direct=True, vec_a=_vec(s.K), vec_b=_vec(s.N),
    )  # fmt: skip


def _gemv(op) -> GemmView:
    s = op.shape
    return GemmView(
        1, s.M, 1, s.K,
        a=lambda r, b, m, k: r["W"](m, k),
        b=lambda r, b, k, n: r["x"](k),
        out=lambda m: (0, m, 0),
        direct=False, vec_a=_vec(s.K), vec_b=_vec(s.K), b_layout="nk",
    )  # fmt: skip


def _scan(op) -> GemmView:
    s = op.shape
    return GemmView(
        1, s.M, s.N, s.K,
        a=lambda r, b, m, k: r["A"](m, k),
        b=lambda r, b, k, n: r["mask"](n, k),
        out=lambda i, j: (0, i, j),
        direct=True, vec_a=_vec(s.K), vec_b=min(MAX_COMPUTED_VEC, _vec(s.K)), b_layout="nk",
    )  # fmt: skip


def _convolution(op) -> GemmView:
    """conv1d/2d/3d and dil: M = output channels, N = the output pixels of all images (one GEMM,
    so that block tiles are not bounded by one image's pixel count), K = kernel taps x C."""
    s = op.shape
    outs, kern = s.out_extents, s.kernel_extents

    def a(r, b, m, k):
        *taps, c = _unravel(k, (*kern, s.C))
        return r["w"](m, c, *taps)

    def b_(r, b, k, n):
        *taps, c = _unravel(k, (*kern, s.C))
        img, *pix = _unravel(n, (s.N, *outs))
        return r["x"](img, c, *(o * s.stride + t * s.dilation for o, t in zip(pix, taps)))

    return GemmView(
        1, s.K, s.N * prod(outs), s.C * prod(kern),
        a=a, b=b_,
        out=lambda n, k, *pix: (0, k, _flat((n, *pix), (s.N, *outs))),
        direct=False, vec_a=_vec(s.C), vec_b=_vec(s.C), b_layout="nk",
        layouts={"x": channels_last(op.tensor("x"), 1, 0), "w": channels_last(op.tensor("w"), 1, 0)},
    )  # fmt: skip


def _t2d(op) -> GemmView:
    """Transposed conv2d as a stride-1 convolution over the zero-inserted input with the flipped
    kernel (N: the output pixels of all images, as for convolutions)."""
    s = op.shape
    outs, kern = s.out_extents, (s.R, s.S)

    def a(r, b, m, k):
        kh, kw, c = _unravel(k, (*kern, s.C))
        return r["w"](c, m, s.R - 1 - kh, s.S - 1 - kw)

    def b_(r, b, k, n):
        kh, kw, c = _unravel(k, (*kern, s.C))
        img, oh, ow = _unravel(n, (s.N, *outs))
        return r["x"](img, c, oh + kh, ow + kw)

    return GemmView(
        1, s.K, s.N * prod(outs), s.C * s.R * s.S,
        a=a, b=b_,
        out=lambda n, k, oh, ow: (0, k, _flat((n, oh, ow), (s.N, *outs))),
        direct=False, vec_a=_vec(s.C), vec_b=_vec(s.C), b_layout="nk",
        layouts={"x": channels_last(op.tensor("x"), 1, 0), "w": channels_last(op.tensor("w"), 0, 1)},
    )  # fmt: skip


def channels_last(spec: TensorSpec, channel_dim: int, outer_dim: int) -> BlockedLayout:
    """(..., C, ...) -> (outer, *the others in order, C): the channels innermost, as NHWC / KRSC
    (a blocked layout with one lane and the whole channel axis as its reduce block)."""
    return BlockedLayout(reduce_dim=channel_dim, lane_dim=outer_dim, lanes=1, reduce=spec.shape[channel_dim])


def packed_index(layout: BlockedLayout, shape: tuple[int, ...], idx: tuple) -> tuple:
    """Logical indices -> the indices of the same element in ``layout`` (BlockedLayout.shape)."""
    lane, red = idx[layout.lane_dim], idx[layout.reduce_dim]
    others = [i for d, i in enumerate(idx) if d not in (layout.lane_dim, layout.reduce_dim)]

    def split(i, block: int, extent: int) -> tuple:
        if block == 1:
            return i, 0
        return (0, i) if block == extent else (i // block, i % block)

    lane_hi, lane_lo = split(lane, layout.lanes, shape[layout.lane_dim])
    red_hi, red_lo = split(red, layout.reduce, shape[layout.reduce_dim])
    if layout.others_first:
        return (*others, lane_hi, red_hi, lane_lo, red_lo)
    return (lane_hi, *others, red_hi, lane_lo, red_lo)


def _flat(idx, extents) -> object:
    flat = idx[0]
    for i, e in zip(idx[1:], extents[1:]):
        flat = flat * e + i
    return flat


VIEWS: dict[str, Callable[[Operator], GemmView]] = {
    "gemm": _gemm,
    "dense": _dense,
    "bmm": _bmm,
    "gemv": _gemv,
    "scan": _scan,
    "conv1d": _convolution,
    "conv2d": _convolution,
    "conv3d": _convolution,
    "dil": _convolution,
    "t2d": _t2d,
}


def arg_shape(spec: TensorSpec, layouts: dict[str, BlockedLayout]) -> tuple[int, ...]:
    """The shape the kernel takes argument ``spec`` in."""
    return layouts[spec.name].shape(spec.shape) if spec.name in layouts else spec.shape


def readers(op: Operator, placeholders: dict, layouts: dict[str, BlockedLayout]) -> dict[str, Reader]:
    """Logical readers of the operator's tensors: arguments (stored as ``layouts`` says) zero-padded
    as their TensorSpec says (convolution padding, t2d's zero insertion), constants from the
    operator's definition."""
    out = {}
    for t in [*op.inputs, *op.constants]:
        if t.role == "constant":
            out[t.name] = padded(lambda *i, name=t.name: op.constant(name, *i), t)
        elif t.name in layouts:
            lay, ph = layouts[t.name], placeholders[t.name]
            out[t.name] = padded(lambda *i, lay=lay, ph=ph, shape=t.shape: ph[packed_index(lay, shape, i)], t)
        else:
            out[t.name] = padded(lambda *i, ph=placeholders[t.name]: ph[i], t)
    return out
