"""var: row variances over the last axis, A[M, N] -> out[M] (two passes, fp32 accumulation)."""

from __future__ import annotations

import numpy as np

from heron_core.ops.reduction import RowReduction


class Var(RowReduction):
    """var: out[i] = (1/N) sum_j (A[i, j] - mean_i)^2 (population variance, two passes)"""

    name = "var"

    def compute(self, read):
        from tvm import te

        s = self.shape
        mean = self.row_mean(read, "row_mean")
        k = te.reduce_axis((0, s.N), name="k2")

        def dev(i):
            d = read["A"](i, k).astype(self.acc_dtype) - mean[i]
            return te.sum(d * d, axis=k)

        squares = te.compute((s.M,), dev, name="squares")
        return te.compute((s.M,), lambda i: (squares[i] / float(s.N)).astype(self.out_dtype), name="out")

    def reference(self, arrays):
        return arrays["A"].astype(np.float64).var(axis=1).astype(self.out_dtype)

    def op_count(self) -> int:
        return 3 * self.shape.M * self.shape.N  # the sum; then a subtraction and a multiply-add per element
