"""Operators: what to compute (a TVM compute definition on logical layouts), how to check it
(a numpy reference) and how much work it is (op count). One module per operator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

Accessor = Callable[..., object]  # logical indices -> TVM PrimExpr


class ShapeParams(BaseModel):
    """Base of an operator's named shape parameters; field order is the positional order."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str
    role: Literal["input", "weight", "output"]


@dataclass(frozen=True)
class DotHint:
    """Where an int8 dot-product micro-kernel (e.g. VNNI 16x4) maps onto the operator.

    ``weight`` is the input whose (reduce_dim, lane_dim) tile feeds the micro-kernel, the
    output's ``out_lane_axis`` runs along the lanes and the compute's ``reduce_axis``-th
    reduction loop runs along the reduction.
    """

    weight: str
    weight_reduce_dim: int
    weight_lane_dim: int
    out_lane_axis: int
    reduce_axis: int


# Element types of an integer-dot operator: activations u8, weights s8 (what VNNI multiplies).
INT8_DTYPES = {"int8": ("uint8", "int8"), "uint8": ("uint8", "int8")}


class Operator(ABC):
    """A workload family. Subclasses set ``name``, ``Shape`` and implement the abstract methods."""

    name: ClassVar[str]
    Shape: ClassVar[type[ShapeParams]]
    default_shape: ClassVar[dict[str, int]]
    dot_hint: ClassVar[DotHint | None] = None

    def __init__(self, shape: ShapeParams, in_dtype: str, out_dtype: str):
        self.shape = shape
        self.in_dtype = in_dtype
        self.out_dtype = out_dtype

    @abstractmethod
    def tensors(self) -> list[TensorSpec]:
        """Inputs in call order, then the output (last)."""

    @abstractmethod
    def compute(self, read: dict[str, Accessor]):
        """Return the output ``te.Tensor``; read inputs only through ``read[name](*indices)``
        so that a target can change their storage layout (e.g. pack weights)."""

    @abstractmethod
    def reference(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The exact expected output, computed with numpy from the logical inputs."""

    @abstractmethod
    def op_count(self) -> int:
        """Arithmetic operations (a multiply-add counts 2)."""

    def numpy_baseline(self, arrays: dict[str, np.ndarray]) -> Callable[[], object]:
        """A zero-argument callable computing the operator the fast numpy way (for speedups)."""
        return lambda: self.reference(arrays)

    @property
    def inputs(self) -> list[TensorSpec]:
        return [t for t in self.tensors() if t.role != "output"]

    @property
    def output(self) -> TensorSpec:
        return self.tensors()[-1]

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for t in self.inputs:
            if np.dtype(t.dtype).kind in "iu":
                info = np.iinfo(t.dtype)
                out[t.name] = rng.integers(info.min, info.max, t.shape, dtype=t.dtype, endpoint=True)
            else:
                out[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
        return out

    def shape_label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.shape.model_dump().items())

    def case(self) -> list[int]:
        return list(self.shape.model_dump().values())
