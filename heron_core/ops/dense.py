"""dense: C[M, N] = A[M, K] · B[N, K]ᵀ, a linear layer with its weight stored (out, in) as PyTorch does."""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes


class DenseShape(ShapeParams):
    M: PositiveInt
    K: PositiveInt
    N: PositiveInt
    bias: bool = False
    relu: bool = False


class Dense(Operator):
    name = "dense"
    Shape = DenseShape
    default_shape = {"M": 64, "K": 64, "N": 64}
    presets = {
        "bert_qkv": {"M": 128, "K": 768, "N": 2304},
        "bert_ffn1": {"M": 128, "K": 768, "N": 3072},
        "bert_ffn2": {"M": 128, "K": 3072, "N": 768},
    }
    dot_hint = DotHint(
        weight="B", weight_reduce_dim=1, weight_lane_dim=0, data="A", data_reduce_dim=1, out_lane_axis=1, reduce_axis=0
    )

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return self.with_epilogue([
            TensorSpec("A", (s.M, s.K), a, "input"),
            TensorSpec("B", (s.N, s.K), b, "weight"),
        ], TensorSpec("C", (s.M, s.N), self.out_dtype, "output"))

    def compute(self, read):
        from tvm import te

        s, out = self.shape, self.acc_dtype
        k = te.reduce_axis((0, s.K), name="k")
        return te.compute(
            (s.M, s.N), lambda i, j: te.sum(read["A"](i, k).astype(out) * read["B"](j, k).astype(out), axis=k), name="C"
        )

    def reference(self, arrays):
        return self.finish(arrays["A"].astype(np.float64) @ arrays["B"].astype(np.float64).T, arrays)

    def numpy_baseline(self, arrays):
        a, b = arrays["A"].astype(np.float32), arrays["B"].astype(np.float32)
        return lambda: a @ b.T

    def op_count(self) -> int:
        s = self.shape
        return 2 * s.M * s.N * s.K
