"""gemm: C[M, N] = A[M, K] · B[K, N] (int8: u8 activations × s8 weights → s32)."""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes


class GemmShape(ShapeParams):
    M: PositiveInt
    K: PositiveInt
    N: PositiveInt
    bias: bool = False
    relu: bool = False


class Gemm(Operator):
    name = "gemm"
    Shape = GemmShape
    default_shape = {"M": 64, "K": 64, "N": 64}
    presets = {
        "G1": {"M": 1024, "K": 1024, "N": 1024},
        "G2": {"M": 4096, "K": 4096, "N": 4096},
        "G3": {"M": 32, "K": 2048, "N": 1008},
        "G4": {"M": 32, "K": 4096, "N": 4096},
        "G5": {"M": 32, "K": 4096, "N": 1008},
    }
    dot_hint = DotHint(
        weight="B", weight_reduce_dim=0, weight_lane_dim=1, data="A", data_reduce_dim=1, out_lane_axis=1, reduce_axis=0
    )

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return self.with_epilogue([
            TensorSpec("A", (s.M, s.K), a, "input"),
            TensorSpec("B", (s.K, s.N), b, "weight"),
        ], TensorSpec("C", (s.M, s.N), self.out_dtype, "output"))

    def compute(self, read):
        from tvm import te

        s = self.shape
        k = te.reduce_axis((0, s.K), name="k")
        out = self.acc_dtype
        return te.compute(
            (s.M, s.N),
            lambda i, j: te.sum(read["A"](i, k).astype(out) * read["B"](k, j).astype(out), axis=k),
            name="C",
        )

    def reference(self, arrays):
        # float64 BLAS is exact here (|sum| < 2**53) and far faster than numpy's integer matmul.
        return self.finish(arrays["A"].astype(np.float64) @ arrays["B"].astype(np.float64), arrays)

    def numpy_baseline(self, arrays):
        a, b = (arrays[n].astype(np.float32) for n in ("A", "B"))
        return lambda: a @ b

    def op_count(self) -> int:
        s = self.shape
        return 2 * s.M * s.N * s.K
