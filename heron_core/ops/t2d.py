"""t2d: transposed 2-D convolution (PyTorch's ConvTranspose2d): NCHW (or, with ``channels_last=1``,
NHWC) activations x CKRS weights.

out[n, k, h*stride + r - pad, w*stride + s - pad] += x[n, c, h, w] · w[c, k, r, s], with output
extent (H-1)*stride - 2*pad + R + output_pad. Computed as a direct convolution over the input with
stride-1 zeros inserted between elements and R-1-pad zeros around it, with the kernel flipped.
"""

from __future__ import annotations

import numpy as np
from pydantic import NonNegativeInt, PositiveInt, model_validator

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes
from heron_core.ops.convolution import CONV_ALIASES, conv_dot_hint, logical, stored, to_channels_first


class T2dShape(ShapeParams):
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    output_pad: NonNegativeInt = 0
    channels_last: bool = False
    aliases = {**CONV_ALIASES, "outpadding": "output_pad"}

    @property
    def out_extents(self) -> tuple[int, int]:
        return tuple((n - 1) * self.stride - 2 * self.pad + r + self.output_pad for n, r in ((self.H, self.R), (self.W, self.S)))

    @model_validator(mode="after")
    def _valid(self):
        if self.pad > min(self.R, self.S) - 1:
            raise ValueError(f"pad ({self.pad}) must be smaller than the kernel ({self.R}x{self.S})")
        if self.output_pad >= self.stride:
            raise ValueError(f"output_pad ({self.output_pad}) must be smaller than the stride ({self.stride})")
        return self


_resnet = {"N": 1, "H": 56, "W": 56, "C": 64, "K": 64, "R": 3, "S": 3, "stride": 1, "pad": 1}


class T2d(Operator):
    name = "t2d"
    Shape = T2dShape
    shape: T2dShape
    default_shape = {"N": 1, "C": 64, "H": 14, "W": 14, "K": 64, "R": 3, "S": 3, "stride": 1, "pad": 1}
    presets = {
        "T1": _resnet,
        "T2": {**_resnet, "R": 1, "S": 1, "pad": 0},
        "T3": {**_resnet, "H": 28, "W": 28, "C": 128, "K": 128},
        "T4": {**_resnet, "H": 28, "W": 28, "C": 128, "K": 256, "R": 1, "S": 1, "stride": 2, "pad": 0},
        "T5": {**_resnet, "H": 14, "W": 14, "C": 256, "K": 256},
        "T6": {**_resnet, "H": 14, "W": 14, "C": 256, "K": 512, "R": 1, "S": 1, "stride": 2, "pad": 0},
    }

    @property
    def dot_hint(self) -> DotHint:
        return conv_dot_hint(4, self.shape.channels_last, weight_reduce_dim=0, weight_lane_dim=1)

    def tensors(self) -> list[TensorSpec]:
        s, last = self.shape, self.shape.channels_last
        a, b = int_dtypes(self.in_dtype)
        around = [(r - 1 - s.pad, r - 1 - s.pad + s.output_pad, s.stride - 1) for r in (s.R, s.S)]
        return [
            TensorSpec("x", stored((s.N, s.C, s.H, s.W), last), a, "input", stored(((0, 0, 0), (0, 0, 0), *around), last)),
            TensorSpec("w", (s.C, s.K, s.R, s.S), b, "weight"),
            TensorSpec("out", stored((s.N, s.K, *s.out_extents), last), self.out_dtype, "output"),
        ]

    def compute(self, read):
        from tvm import te

        s, out, last = self.shape, self.out_dtype, self.shape.channels_last
        c = te.reduce_axis((0, s.C), name="c")
        kh = te.reduce_axis((0, s.R), name="kh")
        kw = te.reduce_axis((0, s.S), name="kw")

        def body(*idx):
            n, k, oh, ow = logical(idx, last)
            x = read["x"](*stored((n, c, oh + kh, ow + kw), last))
            return te.sum(x.astype(out) * read["w"](c, k, s.R - 1 - kh, s.S - 1 - kw).astype(out), axis=[c, kh, kw])

        return te.compute(stored((s.N, s.K, *s.out_extents), last), body, name="out")

    def _apply(self, arrays, dtype) -> np.ndarray:
        s = self.shape
        x, w = to_channels_first(arrays["x"], s.channels_last).astype(dtype), arrays["w"].astype(dtype)
        full = np.zeros((s.N, s.K, (s.H - 1) * s.stride + s.R + s.output_pad, (s.W - 1) * s.stride + s.S + s.output_pad), dtype)
        for r in range(s.R):
            for q in range(s.S):
                contrib = np.tensordot(x, w[:, :, r, q], axes=([1], [0]))  # N, H, W, K
                full[:, :, r : r + (s.H - 1) * s.stride + 1 : s.stride, q : q + (s.W - 1) * s.stride + 1 : s.stride] += (
                    contrib.transpose(0, 3, 1, 2)
                )
        oh, ow = s.out_extents
        out = full[:, :, s.pad : s.pad + oh, s.pad : s.pad + ow]
        return np.moveaxis(out, 1, -1) if s.channels_last else out

    def reference(self, arrays):
        return self._apply(arrays, np.float64).astype(self.out_dtype)

    def numpy_baseline(self, arrays):
        return lambda: self._apply(arrays, np.float32)

    def op_count(self) -> int:
        """Multiply-adds of the transposed convolution itself (not of the zero-inserted form), only
        those whose product lands in the output (``pad`` crops the others)."""
        s = self.shape
        taps = [
            sum(0 <= i * s.stride + r - s.pad < out for i in range(n) for r in range(k))
            for n, k, out in zip((s.H, s.W), (s.R, s.S), s.out_extents)
        ]
        return 2 * s.N * s.K * s.C * taps[0] * taps[1]
