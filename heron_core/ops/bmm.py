"""bmm: C[b, M, N] = A[b, M, K] · B[b, K, N], a batched matmul of two activations (attention).

B is an input, not a weight: a target that needs it in another layout packs it inside the kernel.
"""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes


class BmmShape(ShapeParams):
    batch: PositiveInt
    M: PositiveInt
    K: PositiveInt
    N: PositiveInt
    aliases = {"B": "batch"}


class Bmm(Operator):
    name = "bmm"
    Shape = BmmShape
    default_shape = {"batch": 4, "M": 64, "K": 64, "N": 64}
    presets = {
        "B1": {"batch": 12, "M": 512, "K": 64, "N": 512},
        "B2": {"batch": 12, "M": 512, "K": 512, "N": 64},
        "B3": {"batch": 16, "M": 512, "K": 64, "N": 512},
        "B4": {"batch": 16, "M": 512, "K": 512, "N": 64},
    }
    dot_hint = DotHint(
        weight="B", weight_reduce_dim=1, weight_lane_dim=2, data="A", data_reduce_dim=2, out_lane_axis=2, reduce_axis=0
    )

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return [
            TensorSpec("A", (s.batch, s.M, s.K), a, "input"),
            TensorSpec("B", (s.batch, s.K, s.N), b, "input"),
            TensorSpec("C", (s.batch, s.M, s.N), self.out_dtype, "output"),
        ]

    def compute(self, read):
        from tvm import te

        s, out = self.shape, self.out_dtype
        k = te.reduce_axis((0, s.K), name="k")
        return te.compute(
            (s.batch, s.M, s.N),
            lambda b, i, j: te.sum(read["A"](b, i, k).astype(out) * read["B"](b, k, j).astype(out), axis=k),
            name="C",
        )

    def reference(self, arrays):
        return np.matmul(arrays["A"].astype(np.float64), arrays["B"].astype(np.float64)).astype(self.out_dtype)

    def numpy_baseline(self, arrays):
        a, b = arrays["A"].astype(np.float32), arrays["B"].astype(np.float32)
        return lambda: np.matmul(a, b)

    def op_count(self) -> int:
        s = self.shape
        return 2 * s.batch * s.M * s.N * s.K
