"""Every supported operator seen as a batched GEMM C[b, m, n] = sum_k A[b, m, k] . B[b, k, n].

The Tensor Core template schedules this GEMM; a view says how A and B are read from the
operator's own arguments (in their logical layouts: convolutions are implicit GEMMs over the
NCHW input, gathered while it is staged into shared memory) and where each output element lives.
Convolutions map the output channels to M (the weight, KCRS, is A: rows contiguous along the
reduction C*R*S) and the output pixels to N (the input gathered as im2col is B: contiguous along
the pixels for a 1x1, stride-1 kernel), so the GEMM's C is the NKPQ output itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd, prod
from typing import Callable

from heron_core.operator import Operator, padded

FRAG_ALIGN = 16  # GEMM extents are padded to multiples of this (the fragments' common multiple)
MAX_VEC = 8  # 8 x fp16 = 16 bytes: the widest load, and what cp.async copies at most

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
    vec_b: int  # the same for B along n

    @property
    def padded(self) -> tuple[int, int, int]:
        return tuple(-(-x // FRAG_ALIGN) * FRAG_ALIGN for x in (self.M, self.N, self.K))

    @property
    def needs_padding(self) -> bool:
        return self.padded != (self.M, self.N, self.K)


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
        direct=True, vec_a=_vec(s.K), vec_b=1,
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
        direct=False, vec_a=_vec(s.K), vec_b=1,
    )  # fmt: skip


def _scan(op) -> GemmView:
    s = op.shape
    return GemmView(
        1, s.M, s.N, s.K,
        a=lambda r, b, m, k: r["A"](m, k),
        b=lambda r, b, k, n: r["mask"](n, k),
        out=lambda i, j: (0, i, j),
        direct=True, vec_a=_vec(s.K), vec_b=1,
    )  # fmt: skip


def _convolution(op) -> GemmView:
    """conv1d/2d/3d and dil: M = output channels, N = output pixels, K = C x kernel taps."""
    s = op.shape
    outs, kern = s.out_extents, s.kernel_extents
    # A row (k = c, taps) is contiguous in KCRS, but TVM vectorizes each index of w[m, c, r, s]
    # separately and turns the copy into a gather: only a 1-tap kernel reads A as one ramp. B is
    # a ramp only for a 1x1, stride-1, unpadded, one-dimensional output (x[b, c, n]).
    one_tap = all(r == 1 for r in kern)
    pointwise_1d = one_tap and s.stride == 1 and s.pad == 0 and len(outs) == 1

    def a(r, b, m, k):
        c, *taps = _unravel(k, (s.C, *kern))
        return r["w"](m, c, *taps)

    def b_(r, b, k, n):
        c, *taps = _unravel(k, (s.C, *kern))
        pix = _unravel(n, outs)
        return r["x"](b, c, *(o * s.stride + t * s.dilation for o, t in zip(pix, taps)))

    return GemmView(
        s.N, s.K, prod(outs), s.C * prod(kern),
        a=a, b=b_,
        out=lambda n, k, *pix: (n, k, _flat(pix, outs)),
        direct=len(outs) == 1, vec_a=_vec(s.C) if one_tap else 1, vec_b=_vec(prod(outs)) if pointwise_1d else 1,
    )  # fmt: skip


def _t2d(op) -> GemmView:
    """Transposed conv2d as a stride-1 convolution over the zero-inserted input with the flipped kernel."""
    s = op.shape
    outs, kern = s.out_extents, (s.R, s.S)

    def a(r, b, m, k):
        c, kh, kw = _unravel(k, (s.C, *kern))
        return r["w"](c, m, s.R - 1 - kh, s.S - 1 - kw)

    def b_(r, b, k, n):
        c, kh, kw = _unravel(k, (s.C, *kern))
        oh, ow = _unravel(n, outs)
        return r["x"](b, c, oh + kh, ow + kw)

    return GemmView(
        s.N, s.K, prod(outs), s.C * s.R * s.S,
        a=a, b=b_,
        out=lambda n, k, oh, ow: (n, k, oh * outs[1] + ow),
        direct=False, vec_a=1, vec_b=1,
    )  # fmt: skip


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


def readers(op: Operator, placeholders: dict) -> dict[str, Reader]:
    """Logical readers of the operator's tensors: arguments zero-padded as their TensorSpec says
    (convolution padding, t2d's zero insertion), constants from the operator's definition."""
    out = {}
    for t in [*op.inputs, *op.constants]:
        if t.role == "constant":
            out[t.name] = padded(lambda *i, name=t.name: op.constant(name, *i), t)
        else:
            out[t.name] = padded(lambda *i, ph=placeholders[t.name]: ph[i], t)
    return out
