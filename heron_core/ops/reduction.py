"""Row reductions over the last axis, shared by mean and var: A[M, N] -> out[M] (the original
Heron's CUDA mean/var: per-channel statistics of an activation laid out as [C, N*H*W]). Sums are
accumulated in float32 (or wider) whatever the element type: fp16 sums of 50k elements would not be."""

from __future__ import annotations

from typing import ClassVar

from pydantic import PositiveInt

from heron_core.operator import Operator, ShapeParams, TensorSpec


class RowShape(ShapeParams):
    M: PositiveInt
    N: PositiveInt
    aliases = {"C": "M", "NHW": "N"}


def _batchnorm(c: int, n: int, hw: int) -> dict[str, int]:
    return {"M": c, "N": n * hw * hw}


class RowReduction(Operator):
    Shape = RowShape
    default_shape = {"M": 64, "N": 3136}
    # per-channel statistics of ResNet-50's activations (batch 16, as the original's CUDA cases)
    presets = {
        "R1": _batchnorm(64, 16, 56),
        "R2": _batchnorm(128, 16, 28),
        "R3": _batchnorm(256, 16, 14),
        "R4": _batchnorm(1000, 1, 7),
    }
    acc_dtype: ClassVar[str] = "float32"

    def tensors(self) -> list[TensorSpec]:
        s = self.shape
        return [TensorSpec("A", (s.M, s.N), self.in_dtype, "input"), TensorSpec("out", (s.M,), self.out_dtype, "output")]

    def row_mean(self, read, name: str):
        from tvm import te

        s = self.shape
        k = te.reduce_axis((0, s.N), name="k")
        total = te.compute((s.M,), lambda i: te.sum(read["A"](i, k).astype(self.acc_dtype), axis=k), name=f"{name}_sum")
        return te.compute((s.M,), lambda i: total[i] / float(s.N), name=name)
