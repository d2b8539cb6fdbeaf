"""gemv: y[M] = W[M, K] · x[K] (int8: u8 activations x, s8 weights W -> s32)."""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes


class GemvShape(ShapeParams):
    M: PositiveInt
    K: PositiveInt


class Gemv(Operator):
    name = "gemv"
    Shape = GemvShape
    default_shape = {"M": 256, "K": 256}
    presets = {
        "GV1": {"M": 512, "K": 16},
        "GV2": {"M": 1024, "K": 256},
        "GV3": {"M": 256, "K": 1024},
        "GV4": {"M": 512, "K": 256},
        "GV5": {"M": 1024, "K": 1024},
    }
    dot_hint = DotHint(
        weight="W", weight_reduce_dim=1, weight_lane_dim=0, data="x", data_reduce_dim=0, out_lane_axis=0, reduce_axis=0
    )

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return [
            TensorSpec("x", (s.K,), a, "input"),
            TensorSpec("W", (s.M, s.K), b, "weight"),
            TensorSpec("y", (s.M,), self.out_dtype, "output"),
        ]

    def compute(self, read):
        from tvm import te

        s, out = self.shape, self.out_dtype
        k = te.reduce_axis((0, s.K), name="k")
        return te.compute((s.M,), lambda m: te.sum(read["x"](k).astype(out) * read["W"](m, k).astype(out), axis=k), name="y")

    def reference(self, arrays):
        return (arrays["W"].astype(np.float64) @ arrays["x"].astype(np.float64)).astype(self.out_dtype)

    def numpy_baseline(self, arrays):
        w, x = arrays["W"].astype(np.float32), arrays["x"].astype(np.float32)
        return lambda: w @ x

    def op_count(self) -> int:
        return 2 * self.shape.M * self.shape.K
