"""Direct convolutions in PyTorch's layouts, shared by conv1d, conv2d, conv3d and dil:
out[n, k, o...] = sum_{c, r...} x[n, c, o*stride + r*dilation - pad] · w[k, c, r...]
(x: N, C, *spatial; w: K, C, *kernel; out: N, K, *out_spatial; zero padding).

``groups`` (conv1d, conv2d; PyTorch's convention): the channels split into that many groups, output
channel k reading only the C/groups input channels of its group, g = k // (K/groups):
w is K, C/groups, *kernel. Depthwise: groups = C (K = C, or a multiple of it).

``channels_last=1`` stores the activations and the output channels-last (x: N, *spatial, C;
out: N, *out_spatial, K), PyTorch's ``channels_last`` memory format and oneDNN's preferred one:
the micro-kernel then reads x and writes out where they lie, with no packing or transposition."""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np
from pydantic import model_validator

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes

CONV_ALIASES = {"CI": "C", "CO": "K", "KD": "T", "KH": "R", "KW": "S", "padding": "pad"}


class ConvShape(ShapeParams):
    """Subclasses declare, in this order, N, C, the input's spatial extents, K, the kernel's
    extents, stride, pad and dilation (field order is the positional order of --shape)."""

    spatial: ClassVar[tuple[str, ...]]
    kernel: ClassVar[tuple[str, ...]]
    aliases = CONV_ALIASES

    @property
    def group_count(self) -> int:
        return getattr(self, "groups", 1)

    @property
    def group_channels(self) -> tuple[int, int]:
        """(input, output) channels per group."""
        return self.C // self.group_count, self.K // self.group_count

    @property
    def depthwise(self) -> bool:
        """One input channel per group (each output channel reads one channel, K/C per channel)."""
        return self.group_count > 1 and self.group_count == self.C

    @property
    def in_extents(self) -> tuple[int, ...]:
        return tuple(getattr(self, f) for f in self.spatial)

    @property
    def kernel_extents(self) -> tuple[int, ...]:
        return tuple(getattr(self, f) for f in self.kernel)

    @property
    def out_extents(self) -> tuple[int, ...]:
        return tuple(
            (n + 2 * self.pad - self.dilation * (r - 1) - 1) // self.stride + 1
            for n, r in zip(self.in_extents, self.kernel_extents)
        )

    @model_validator(mode="after")
    def _has_output(self):
        g = self.group_count
        if self.C % g or self.K % g:
            raise ValueError(f"groups ({g}) must divide both C ({self.C}) and K ({self.K})")
        if min(self.out_extents) < 1:
            raise ValueError(
                f"the output would be empty: input {self.in_extents} padded by {self.pad} is smaller than the "
                f"kernel {self.kernel_extents} at dilation {self.dilation}"
            )
        return self


def stored(logical: tuple, channels_last: bool) -> tuple:
    """(N, C, *spatial) -> the storage order: itself, or (N, *spatial, C) channels-last."""
    return (logical[0], *logical[2:], logical[1]) if channels_last else tuple(logical)


def logical(idx: tuple, channels_last: bool) -> tuple:
    """The inverse of :func:`stored`."""
    return (idx[0], idx[-1], *idx[1:-1]) if channels_last else tuple(idx)


def conv_dot_hint(rank: int, channels_last: bool, weight_reduce_dim: int = 1, weight_lane_dim: int = 0) -> DotHint:
    """Lanes along the output channels K, the 4-wide dot along the input channels C."""
    channel = rank - 1 if channels_last else 1
    return DotHint(
        weight="w",
        weight_reduce_dim=weight_reduce_dim,
        weight_lane_dim=weight_lane_dim,
        data="x",
        data_reduce_dim=channel,
        out_lane_axis=channel,
        reduce_axis=0,
    )


def to_channels_first(array: np.ndarray, channels_last: bool) -> np.ndarray:
    return np.moveaxis(array, -1, 1) if channels_last else array


class Convolution(Operator):
    Shape: ClassVar[type[ConvShape]]
    shape: ConvShape

    @property
    def dot_hint(self) -> DotHint:
        return conv_dot_hint(2 + len(self.shape.spatial), self.shape.channels_last)

    def tensors(self) -> list[TensorSpec]:
        s, last = self.shape, self.shape.channels_last
        a, b = int_dtypes(self.in_dtype)
        pad = stored(((0, 0, 0), (0, 0, 0)) + ((s.pad, s.pad, 0),) * len(s.spatial), last)
        return self.with_epilogue(
            [
                TensorSpec("x", stored((s.N, s.C, *s.in_extents), last), a, "input", pad if s.pad else None),
                TensorSpec("w", (s.K, s.group_channels[0], *s.kernel_extents), b, "weight"),
            ],
            TensorSpec("out", stored((s.N, s.K, *s.out_extents), last), self.out_dtype, "output"),
        )

    def compute(self, read):
        from tvm import te

        s, out, last = self.shape, self.acc_dtype, self.shape.channels_last
        dims = [f.lower() for f in s.spatial]
        cg, kg = s.group_channels
        c = te.reduce_axis((0, cg), name="c")
        rs = [te.reduce_axis((0, r), name=f"k{d}") for r, d in zip(s.kernel_extents, dims)]

        def body(*idx):
            n, k, *o = logical(idx, last)
            pos = [oi * s.stride + ri * s.dilation for oi, ri in zip(o, rs)]
            x = read["x"](*stored((n, c if s.group_count == 1 else k // kg * cg + c, *pos), last))
            return te.sum(x.astype(out) * read["w"](k, c, *rs).astype(out), axis=[c, *rs])

        return te.compute(stored((s.N, s.K, *s.out_extents), last), body, name="out")

    def _apply(self, arrays, dtype) -> np.ndarray:
        """The output in the storage layout, from inputs in it."""
        s = self.shape
        x = to_channels_first(arrays["x"], s.channels_last).astype(dtype)
        x = np.pad(x, [(0, 0), (0, 0)] + [(s.pad, s.pad)] * len(s.spatial))
        g, (cg, kg) = s.group_count, s.group_channels
        w = arrays["w"].astype(dtype).reshape(g, kg, cg, -1)
        pixels = int(np.prod(s.out_extents))
        result = np.zeros((s.N, g, kg, pixels), dtype)
        for t, r in enumerate(itertools.product(*(range(e) for e in s.kernel_extents))):
            window = tuple(
                slice(ri * s.dilation, ri * s.dilation + (o - 1) * s.stride + 1, s.stride) for ri, o in zip(r, s.out_extents)
            )
            result += w[..., t] @ x[(slice(None), slice(None), *window)].reshape(s.N, g, cg, pixels)
        result = result.reshape(s.N, s.K, *s.out_extents)
        return np.moveaxis(result, 1, -1) if s.channels_last else result

    def reference(self, arrays):
        return self.finish(self._apply(arrays, np.float64), arrays)  # exact: |sums| < 2**53

    def numpy_baseline(self, arrays):
        return lambda: self._apply(arrays, np.float32)

    def op_count(self) -> int:
        """Operations (2 per multiply-add) of the taps that read the input, not its zero padding."""
        s = self.shape
        taps = [
            sum(0 <= o * s.stride + r * s.dilation - s.pad < n for o in range(out) for r in range(k))
            for n, k, out in zip(s.in_extents, s.kernel_extents, s.out_extents)
        ]
        return 2 * s.N * s.K * s.group_channels[0] * int(np.prod(taps))
