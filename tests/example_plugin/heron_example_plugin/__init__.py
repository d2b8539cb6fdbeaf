"""An example third-party Heron plugin: the ``hillclimb`` searcher and the ``matmul_tn`` operator.

Nothing here touches the core: the package registers under the ``heron`` entry-point group
(see pyproject.toml) and implements two hooks.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt

from heron_core import PluginSpec, hookimpl
from heron_core.operator import DotHint, Operator, ShapeParams, TensorSpec, int_dtypes
from heron_core.searcher import Searcher
from heron_core.space import point_key


class HillClimbParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    free_knobs: PositiveInt = 2
    """Knobs re-solved around the best point for each neighbour."""


class HillClimb(Searcher):
    """Neighbours of the fastest point so far: all knobs fixed but a few, the CSP solves those."""

    params: HillClimbParams

    def ask(self, n):
        measured = [r for r in self.history.values() if r.ok]
        if not measured:
            return self.space.sample(n, self.rng, exclude=self.history)
        best = min(measured, key=lambda r: r.latency).point
        out = {}
        for _ in range(20 * n):
            free = set(self.rng.sample(list(best), self.params.free_knobs))
            p = self.space.complete({k: v for k, v in best.items() if k not in free}, self.rng)
            if p is not None and point_key(p) not in self.history:
                out[point_key(p)] = p
            if len(out) == n:
                break
        fill = self.space.sample(n - len(out), self.rng, exclude=set(self.history) | set(out))
        return list(out.values()) + fill


class MatmulTNShape(ShapeParams):
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt


class MatmulTN(Operator):
    """C[M, N] = A[K, M]ᵀ · B[K, N] (activations stored transposed; the target re-lays them out)."""

    name = "matmul_tn"
    Shape = MatmulTNShape
    default_shape = {"M": 32, "N": 32, "K": 64}
    dot_hint = DotHint(
        weight="B", weight_reduce_dim=0, weight_lane_dim=1, data="A", data_reduce_dim=0, out_lane_axis=1, reduce_axis=0
    )

    def tensors(self):
        s = self.shape
        a, b = int_dtypes(self.in_dtype)
        return [
            TensorSpec("A", (s.K, s.M), a, "input"),
            TensorSpec("B", (s.K, s.N), b, "weight"),
            TensorSpec("C", (s.M, s.N), self.out_dtype, "output"),
        ]

    def compute(self, read):
        from tvm import te

        s, out = self.shape, self.out_dtype
        k = te.reduce_axis((0, s.K), name="k")
        return te.compute(
            (s.M, s.N), lambda i, j: te.sum(read["A"](k, i).astype(out) * read["B"](k, j).astype(out), axis=k), name="C"
        )

    def reference(self, arrays):
        return (arrays["A"].astype(np.float64).T @ arrays["B"].astype(np.float64)).astype(self.out_dtype)

    def op_count(self):
        s = self.shape
        return 2 * s.M * s.N * s.K


@hookimpl
def heron_searchers():
    return [PluginSpec("searcher", "hillclimb", HillClimb, HillClimbParams, "neighbours of the best point, via the CSP")]


@hookimpl
def heron_operators():
    return [PluginSpec("operator", "matmul_tn", MatmulTN, MatmulTNShape, "C = A^T . B")]
