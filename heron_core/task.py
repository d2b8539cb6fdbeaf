"""A Task: one operator with a concrete shape and dtypes, on one target."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from heron_core.errors import ConfigError
from heron_core.limits import check_tensors
from heron_core.operator import Operator
from heron_core.registry import Registry, registry
from heron_core.target import Target


class PluginRef(BaseModel):
    """A plugin chosen by name, with its own parameters (validated by the plugin's model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    params: dict[str, Any] = {}


class TaskSpec(BaseModel):
    """Everything needed to rebuild a Task in another process (build and measure workers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    target: PluginRef
    op: str
    shape: dict[str, int]
    in_dtype: str
    out_dtype: str


def validate_params(reg: Registry, kind, ref: PluginRef) -> BaseModel:
    spec = reg.get(kind, ref.name)
    try:
        return spec.params.model_validate(ref.params)
    except ValidationError as exc:
        raise ConfigError(f"{kind.replace('_', ' ')} '{ref.name}': {explain(exc)}") from None


def explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']}" + (f" (got {err['input']!r})" if err["type"] != "missing" else ""))
    return "; ".join(parts)


def make_operator(reg: Registry, spec: TaskSpec, check_memory: bool = False) -> Operator:
    """The operator of ``spec``, its shape validated, its tensors within int32 indexing and (``check_memory``,
    as the Plan asks: not again in workers, whose free memory the run itself reduces) this machine's memory."""
    op_cls: type[Operator] = reg.get("operator", spec.op).factory
    try:
        shape = op_cls.Shape.model_validate(spec.shape)
    except ValidationError as exc:
        raise ConfigError(
            f"operator '{spec.op}' shape: {explain(exc)}; expected " + ",".join(f"{f}=<int>" for f in op_cls.Shape.model_fields)
        ) from None
    op = op_cls(shape, spec.in_dtype, spec.out_dtype)
    check_tensors(op, f"{spec.op}[{op.shape_label()}]", check_memory)
    return op


class Task:
    def __init__(self, spec: TaskSpec, reg: Registry | None = None):
        reg = reg or registry()
        self.spec = spec
        target_spec = reg.get("target", spec.target.name)
        self.target: Target = target_spec.factory(validate_params(reg, "target", spec.target))
        self.op: Operator = make_operator(reg, spec)
        self.target.check_task(self)

    @cached_property
    def context(self):
        return self.target.context()

    @property
    def workload_key(self) -> str:
        """Stable across runs and machines: operator, shape and dtypes."""
        return f"{self.op.name}[{self.op.shape_label()}]:{self.spec.in_dtype}->{self.spec.out_dtype}"

    @property
    def target_key(self) -> str:
        return self.target.key()

    def describe(self) -> str:
        return f"{self.workload_key} on {self.target_key}"

