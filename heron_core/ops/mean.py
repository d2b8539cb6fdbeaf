"""mean: row means over the last axis, A[M, N] -> out[M] (fp32 accumulation)."""

from __future__ import annotations

import numpy as np

from heron_core.ops.reduction import RowReduction


class Mean(RowReduction):
    """mean: out[i] = (1/N) sum_j A[i, j]"""

    name = "mean"

    def compute(self, read):
        from tvm import te

        mean = self.row_mean(read, "row_mean")
        return te.compute(mean.shape, lambda i: mean[i].astype(self.out_dtype), name="out")

    def reference(self, arrays):
        return arrays["A"].astype(np.float64).mean(axis=1).astype(self.out_dtype)

    def op_count(self) -> int:
        return self.shape.M * self.shape.N
