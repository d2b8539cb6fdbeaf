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
    """Base of an operator's named shape parameters; field order is the positional order.
    ``aliases`` maps other accepted names (the original Heron's, e.g. CI) onto fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    aliases: ClassVar[dict[str, str]] = {}
    quiet_defaults: ClassVar[tuple[str, ...]] = ()
    """Fields added after records existed: left out of the label (the workload key) at their default."""

    def as_ints(self) -> dict[str, int]:
        """Every field as an integer (a flag as 0 or 1), as ``--shape`` takes them."""
        return {k: int(v) for k, v in self.model_dump().items()}


Pad = tuple[tuple[int, int, int], ...]  # per dimension: (zeros before, zeros after, zeros between elements)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of an operator, in its logical layout.

    Roles: ``input`` (passed on every call), ``weight`` (passed too, but constant across
    calls in inference, so a target may pack it once, outside the timed kernel),
    ``constant`` (not passed by the caller: :meth:`Operator.constant` defines its elements for
    targets that compute them in the kernel, :meth:`Operator.constant_value` for those that take
    them as an argument materialized once, like a packed weight), ``output``.
    ``pad`` makes the compute see the tensor zero-padded (and zero-inserted), as convolutions do.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    role: Literal["input", "weight", "constant", "output"]
    pad: Pad | None = None

    @property
    def padded_shape(self) -> tuple[int, ...]:
        if not self.pad:
            return self.shape
        return tuple(lo + hi + n + (n - 1) * gap for n, (lo, hi, gap) in zip(self.shape, self.pad))


def padded(read: Accessor, spec: TensorSpec) -> Accessor:
    """``read`` (logical indices) -> a reader of ``spec.padded_shape`` that yields zero in the padding."""
    if not spec.pad:
        return read

    def read_padded(*idx):
        from tvm import tirx

        conds, logical = [], []
        for i, n, (lo, hi, gap) in zip(idx, spec.shape, spec.pad):
            if (lo, hi, gap) == (0, 0, 0):
                logical.append(i)
                continue
            if (lo, gap) == (0, 0):
                conds.append(i < n)
                logical.append(i)
                continue
            j = i - lo
            conds += [j >= 0, j < (n - 1) * (gap + 1) + 1] + ([tirx.floormod(j, gap + 1) == 0] if gap else [])
            logical.append(tirx.floordiv(j, gap + 1) if gap else j)
        return tirx.if_then_else(tirx.all(*conds), read(*logical), tirx.const(0, spec.dtype)) if conds else read(*logical)

    return read_padded


@dataclass(frozen=True)
class DotHint:
    """Where an int8 dot-product micro-kernel (e.g. VNNI 16x4) maps onto the operator.

    ``weight`` is the tensor whose (reduce_dim, lane_dim) tile feeds the micro-kernel,
    ``data`` the one whose ``data_reduce_dim`` is broadcast along the lanes; the output's
    ``out_lane_axis`` runs along the lanes and the compute's ``reduce_axis``-th reduction loop
    along the reduction.
    """

    weight: str
    weight_reduce_dim: int
    weight_lane_dim: int
    data: str
    data_reduce_dim: int
    out_lane_axis: int
    reduce_axis: int


# Element types of an integer-dot operator: activations u8, weights s8 (what VNNI multiplies).
INT8_DTYPES = {"int8": ("uint8", "int8"), "uint8": ("uint8", "int8")}


def numpy_dtype(name: str) -> np.dtype:
    """The numpy dtype of a TVM dtype name; bfloat16 (which numpy lacks) is ml_dtypes' (a TVM dependency)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def int_dtypes(in_dtype: str) -> tuple[str, str]:
    """(activation dtype, weight dtype) for ``in_dtype``: int8 means u8 x s8; others are used as given."""
    return INT8_DTYPES.get(in_dtype, (in_dtype, in_dtype))


class Operator(ABC):
    """A workload family. Subclasses set ``name``, ``Shape`` and implement the abstract methods."""

    name: ClassVar[str]
    Shape: ClassVar[type[ShapeParams]]
    default_shape: ClassVar[dict[str, int]]
    presets: ClassVar[dict[str, dict[str, int]]] = {}  # named shapes, e.g. the paper's cases
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

    def constant(self, name: str, *idx):
        """The element at ``idx`` of the ``constant`` tensor ``name``, as a TVM expression."""
        raise NotImplementedError(f"operator '{self.name}' defines no constant '{name}'")

    def constant_value(self, name: str) -> np.ndarray:
        """The ``constant`` tensor ``name`` as an array (equal to :meth:`constant` element-wise)."""
        raise NotImplementedError(f"operator '{self.name}' defines no constant '{name}'")

    def may_be_nonzero(self, name: str, lo: list, hi: list):
        """For a ``constant`` tensor: a TVM condition that is false only when every element of the
        box ``lo <= idx <= hi`` is zero (lets a target skip work on known zeros); None: unknown."""
        return None

    # --- fused epilogues (heron_core.epilogue): operators whose shape has ``bias``/``relu`` flags
    @property
    def acc_dtype(self) -> str:
        """The accumulator's dtype: int32 under a requantizing (8-bit) or dequantizing (8-bit inputs, float32)
        output, else the output's."""
        if self.out_dtype in ("uint8", "int8") or (self.in_dtype in ("uint8", "int8") and self.out_dtype == "float32"):
            return "int32"
        return self.out_dtype

    def epilogue_for(self, out: TensorSpec):
        """The epilogue writing ``out`` (None when the operator has none or it does nothing)."""
        from heron_core.epilogue import Epilogue

        flags = self.shape.model_dump()
        if "bias" not in flags or self.dot_hint is None or self.acc_dtype != "int32":  # integer accumulators only
            return None
        axis = self.dot_hint.out_lane_axis
        e = Epilogue(bool(flags["bias"]), bool(flags["relu"]), self.out_dtype, out.shape[axis], axis)
        return e if e.active else None

    @property
    def epilogue(self):
        return self.epilogue_for(self.output)

    def with_epilogue(self, operands: list[TensorSpec], out: TensorSpec) -> list[TensorSpec]:
        """``tensors()`` of an operator with an epilogue: its operands, the epilogue's, the output."""
        e = self.epilogue_for(out)
        return [*operands, *(e.tensors() if e else []), out]

    def finish(self, acc: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
        """The reference output from the exact accumulator."""
        e = self.epilogue
        return e.reference(acc, arrays) if e else acc.astype(self.out_dtype)

    def numpy_baseline(self, arrays: dict[str, np.ndarray]) -> Callable[[], object]:
        """A zero-argument callable computing the operator the fast numpy way (for speedups)."""
        return lambda: self.reference(arrays)

    @property
    def inputs(self) -> list[TensorSpec]:
        """What a caller passes, in order (inputs and weights)."""
        return [t for t in self.tensors() if t.role in ("input", "weight")]

    @property
    def constants(self) -> list[TensorSpec]:
        return [t for t in self.tensors() if t.role == "constant"]

    def tensor(self, name: str) -> TensorSpec:
        return next(t for t in self.tensors() if t.name == name)

    @property
    def output(self) -> TensorSpec:
        return self.tensors()[-1]

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        out = {}
        for t in self.inputs:
            dtype = numpy_dtype(t.dtype)
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                out[t.name] = rng.integers(info.min, info.max, t.shape, dtype=dtype, endpoint=True)
            else:
                out[t.name] = rng.standard_normal(t.shape).astype(dtype)
        e = self.epilogue
        if e:
            reduction = max(1, self.op_count() // (2 * int(np.prod(self.output.shape))))
            out.update(e.random(rng, reduction))
        return out

    def shape_label(self) -> str:
        """``K=V,...``; a flag (a bool field) shows as ``=1`` when set and not at all when unset,
        so adding one keeps the labels, and the workload keys, of earlier records."""
        fields, quiet = type(self.shape).model_fields, type(self.shape).quiet_defaults
        items = [(k, v) for k, v in self.shape.model_dump().items() if not (k in quiet and v == fields[k].default)]
        return ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in items if v is not False)

    def case(self) -> list[int]:
        """The shape's values in order, without flags that are unset and fields at a quiet default (cases read as
        before those fields existed)."""
        fields, quiet = type(self.shape).model_fields, type(self.shape).quiet_defaults
        return [
            v
            for k, v in self.shape.as_ints().items()
            if not (k in quiet and v == fields[k].default) and (v or k not in ("bias", "relu"))
        ]
