"""scan: the inclusive prefix sum of each row of A along K, as the original Heron computes it:
out[m, n] = sum_k A[m, k] · mask[n, k] with the 0/1 mask (k <= n), so the sums run on the
int8 dot-product units. N may exceed K (those columns hold the row total)."""

from __future__ import annotations

import numpy as np
from pydantic import PositiveInt

from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes


class ScanShape(ShapeParams):
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt


class Scan(Operator):
    name = "scan"
    Shape = ScanShape
    default_shape = {"M": 64, "N": 64, "K": 64}
    presets = {
        "S1": {"M": 16, "N": 512, "K": 128},
        "S2": {"M": 1024, "N": 16, "K": 256},
        "S3": {"M": 256, "N": 1024, "K": 256},
        "S4": {"M": 512, "N": 256, "K": 16},
        "S5": {"M": 1024, "N": 1024, "K": 1024},
    }
    dot_hint = DotHint(
        weight="mask", weight_reduce_dim=1, weight_lane_dim=0, data="A", data_reduce_dim=1, out_lane_axis=1, reduce_axis=0
    )

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return [
            TensorSpec("A", (s.M, s.K), a, "input"),
            TensorSpec("mask", (s.N, s.K), b, "constant"),
            TensorSpec("out", (s.M, s.N), self.out_dtype, "output"),
        ]

    def constant(self, name, n, k):
        from tvm import tirx

        dtype = self.tensor(name).dtype
        return tirx.Select(k <= n, tirx.const(1, dtype), tirx.const(0, dtype))

    def constant_value(self, name):
        s = self.shape
        return (np.arange(s.K)[None, :] <= np.arange(s.N)[:, None]).astype(self.tensor(name).dtype)

    def may_be_nonzero(self, name, lo, hi):
        return lo[1] <= hi[0]  # some k <= n in the box

    def compute(self, read):
        from tvm import te

        s, out = self.shape, self.out_dtype
        k = te.reduce_axis((0, s.K), name="k")
        return te.compute(
            (s.M, s.N), lambda m, n: te.sum(read["A"](m, k).astype(out) * read["mask"](n, k).astype(out), axis=k), name="out"
        )

    def reference(self, arrays):
        a = arrays["A"]
        sums = np.cumsum(a.astype(np.int64 if a.dtype.kind in "iu" else np.float64), axis=1)
        cols = np.minimum(np.arange(self.shape.N), self.shape.K - 1)
        return sums[:, cols].astype(self.out_dtype)

    def numpy_baseline(self, arrays):
        a = arrays["A"].astype(np.int32)
        return lambda: np.cumsum(a, axis=1)

    def op_count(self) -> int:
        """Operations (2 per multiply-add) by the mask's ones: its zeros are known, not work."""
        s = self.shape
        return 2 * s.M * sum(min(n + 1, s.K) for n in range(s.N))
