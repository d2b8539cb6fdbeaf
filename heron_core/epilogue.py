"""Fused epilogues: what a product operator does to its s32 accumulator before it is stored.

In order, per output element with channel ``c`` (the output axis its lanes run along):

    v = acc + bias[c]                 (``bias=1``; int32, wrapping as int32 does)
    v = max(v, 0)                     (``relu=1``)
    requantization, when the output dtype is uint8 or int8:
    f = rint(float32(v) * scale[c])   (float32 product, then round half to even)
    out = clip(f + float32(zero[c]), dtype range) as the output dtype

or, when the output dtype is float32 (dequantization, as dynamic int8 layers end):
    out = float32(v) * scale[c] + shift[c]

The requantization is ONNX QLinearConv/QLinearMatMul's, with the multiplier
``x_scale * w_scale[c] / y_scale`` precomputed in float32 (the input zero point folded into
``bias``). The float32 steps are exact IEEE operations in both numpy and LLVM (the rounding
between the product and the sum keeps them from being contracted into an FMA), so the
kernel matches :meth:`Epilogue.reference` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from heron_core.operator import TensorSpec

REQUANT_DTYPES = {"uint8": (0, 255), "int8": (-128, 127)}


@dataclass(frozen=True)
class Epilogue:
    bias: bool
    relu: bool
    out_dtype: str
    channels: int
    channel_axis: int

    @property
    def requant(self) -> bool:
        return self.out_dtype in REQUANT_DTYPES

    @property
    def dequant(self) -> bool:
        return self.out_dtype == "float32"

    @property
    def active(self) -> bool:
        return self.bias or self.relu or self.requant or self.dequant

    def tensors(self) -> list[TensorSpec]:
        """The extra operands, constant across calls (``weight``s), in call order."""
        c = (self.channels,)
        specs = [TensorSpec("bias", c, "int32", "weight")] if self.bias else []
        if self.requant:
            specs += [TensorSpec("scale", c, "float32", "weight"), TensorSpec("zero", c, "int32", "weight")]
        if self.dequant:  # per call: they carry the activation's dynamic scale and zero point
            specs += [TensorSpec("scale", c, "float32", "input"), TensorSpec("shift", c, "float32", "input")]
        return specs

    def compute(self, acc, params: dict, shape: tuple[int, ...] | None = None):
        """The epilogue stage over the accumulator ``acc`` (a te.Tensor); ``params``: name -> te.Tensor;
        ``shape``: the output's, where the accumulator is padded beyond it (default: the accumulator's)."""
        from tvm import te, tirx

        axis = self.channel_axis

        def body(*i):
            c = i[axis]
            v = acc[i]
            if self.bias:
                v = v + params["bias"][c]
            if self.relu:
                v = tirx.max(v, tirx.const(0, "int32"))
            if self.dequant:
                return v.astype("float32") * params["scale"][c] + params["shift"][c]
            if not self.requant:
                return v
            lo, hi = REQUANT_DTYPES[self.out_dtype]
            f = tirx.round(v.astype("float32") * params["scale"][c]) + params["zero"][c].astype("float32")
            f = tirx.min(tirx.max(f, tirx.const(lo, "float32")), tirx.const(hi, "float32"))
            return f.astype(self.out_dtype)

        return te.compute(shape or acc.shape, body, name=f"{acc.op.name}_epilogue")

    def reference(self, acc: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The output from the exact accumulator (any numeric dtype), as the kernel computes it."""
        shape = [1] * acc.ndim
        shape[self.channel_axis] = self.channels
        per_channel = lambda name: arrays[name].reshape(shape)  # noqa: E731
        v = acc.astype(np.int64).astype(np.int32)
        if self.bias:
            v = v + per_channel("bias")
        if self.relu:
            v = np.maximum(v, 0)
        if self.dequant:
            return v.astype(np.float32) * per_channel("scale") + per_channel("shift")
        if not self.requant:
            return v.astype(np.int32)
        lo, hi = REQUANT_DTYPES[self.out_dtype]
        f = np.rint(v.astype(np.float32) * per_channel("scale")) + per_channel("zero").astype(np.float32)
        return np.clip(f, np.float32(lo), np.float32(hi)).astype(self.out_dtype)

    def random(self, rng: np.random.Generator, reduction: int) -> dict[str, np.ndarray]:
        """Operands that keep a random u8 x s8 product mostly within the output range."""
        arrays = {}
        if self.bias:
            arrays["bias"] = rng.integers(-(2**15), 2**15, self.channels, dtype=np.int32)
        if self.requant:
            spread = 127.5 * 74 * np.sqrt(reduction)  # ~std of a sum of u8 x s8 products
            arrays["scale"] = (rng.uniform(0.5, 2.0, self.channels) * 40 / spread).astype(np.float32)
            lo, hi = REQUANT_DTYPES[self.out_dtype]
            arrays["zero"] = rng.integers(lo // 8 + (hi + 1) // 8, (hi + 1) // 4, self.channels, dtype=np.int32)
        if self.dequant:
            arrays["scale"] = rng.uniform(1e-4, 1e-3, self.channels).astype(np.float32)
            arrays["shift"] = rng.standard_normal(self.channels).astype(np.float32)
        return arrays
