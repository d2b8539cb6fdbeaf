"""Networks: the tunable layers of a model (operator, shape, precision, occurrence count), the
nodes that could not be mapped to an operator, and the frontends that build them.

A frontend (hook ``heron_frontends``) turns a model file (chosen by suffix: ``.onnx``) or a named
network (``resnet50:batch=1``) into a :class:`Network`; :func:`network_tasks` maps its layers onto
a target's tasks, keeping those the target refuses, with the reason."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal

from pydantic import BaseModel, ConfigDict

from heron_core.errors import ConfigError, HeronError
from heron_core.registry import Registry
from heron_core.task import PluginRef, Task, TaskSpec

Precision = Literal["int8", "float"]
"""What the source computes in: quantized int8 (QLinear*, *Integer, QDQ) or floating point."""


class Layer(BaseModel):
    """One distinct tunable layer; ``count`` identical ones occur in the network (its weight)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str  # the first source node's name: the layer's handle in reports and libraries
    op: str
    shape: dict[str, int]
    precision: Precision
    out_dtype: str | None = None  # an int8 layer with a requantizing epilogue: its u8/s8 output (else s32)
    count: int = 1
    nodes: tuple[str, ...] = ()  # every source node this layer stands for


class Unmapped(BaseModel):
    """Source nodes of one kind that are not tunable layers, with why."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    op_type: str
    reason: str
    count: int
    nodes: tuple[str, ...] = ()


class Network(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    source: str
    frontend: str
    layers: tuple[Layer, ...]
    unmapped: tuple[Unmapped, ...] = ()

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if name == layer.name or name in layer.nodes:
                return layer
        raise ConfigError(f"network {self.name} has no layer '{name}'")


@dataclass(frozen=True)
class Found:
    """One source node mapped to an operator (before deduplication)."""

    node: str
    op: str
    shape: dict[str, int]
    precision: Precision
    out_dtype: str | None = None


def build_network(
    name: str, source: str, frontend: str, found: Iterable[Found], unmapped: Iterable[tuple[str, str, str]]
) -> Network:
    """Identical layers (operator, shape, precision) merged with counts, in order of first
    appearance; ``unmapped``: (node name, op type, reason), grouped by op type and reason."""
    groups: dict[tuple, list[Found]] = {}
    for f in found:
        groups.setdefault((f.op, tuple(sorted(f.shape.items())), f.precision, f.out_dtype), []).append(f)
    layers = tuple(
        Layer(
            name=fs[0].node,
            op=fs[0].op,
            shape=fs[0].shape,
            precision=fs[0].precision,
            out_dtype=fs[0].out_dtype,
            count=len(fs),
            nodes=tuple(f.node for f in fs),
        )
        for fs in groups.values()
    )
    misses: dict[tuple[str, str], list[str]] = {}
    for node, op_type, reason in unmapped:
        misses.setdefault((op_type, reason), []).append(node)
    rest = tuple(Unmapped(op_type=t, reason=r, count=len(ns), nodes=tuple(ns)) for (t, r), ns in misses.items())
    return Network(name=name, source=source, frontend=frontend, layers=layers, unmapped=rest)


class Frontend(ABC):
    """Builds networks: from files whose suffix is in ``suffixes``, and/or named ones (``names``)."""

    suffixes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: BaseModel):
        self.params = params

    def names(self) -> list[str]:
        """The named networks this frontend builds (presets)."""
        return []

    @abstractmethod
    def load(self, source: str, options: dict[str, int]) -> Network:
        """``source``: a file path or one of ``names()``; ``options``: e.g. ``batch``, ``seq``.
        Raises ConfigError for a file it cannot read."""


def parse_source(text: str) -> tuple[str, dict[str, int]]:
    """``resnet50:batch=1,seq=128`` -> ("resnet50", {"batch": 1, "seq": 128}); a path is kept whole."""
    head, sep, tail = text.rpartition(":")
    if sep and re.fullmatch(r"\s*\w+\s*=\s*\d+\s*(,\s*\w+\s*=\s*\d+\s*)*", tail):
        return head, {k.strip(): int(v) for k, v in (p.split("=") for p in tail.split(","))}
    return text, {}


def load_network(text: str, reg: Registry, options: dict[str, int] | None = None) -> Network:
    """The network named by ``text`` (a model file or a preset, with ``:key=value`` options);
    ``options`` (e.g. ``--batch``) win over those in the text."""
    source, given = parse_source(text)
    given.update(options or {})
    frontends = [spec.factory(spec.params()) for spec in (reg.get("frontend", n) for n in reg.names("frontend"))]
    suffix = Path(source).suffix.lower()
    for fe in frontends:
        if suffix and suffix in fe.suffixes:
            if not Path(source).is_file():
                raise ConfigError(f"no model file {source}")
            return fe.load(source, given)
    for fe in frontends:
        if source in fe.names():
            return fe.load(source, given)
    if Path(source).is_file():
        known = ", ".join(s for fe in frontends for s in fe.suffixes) or "none"
        hint = " (pip install heron-frontend-onnx)" if suffix == ".onnx" else ""
        raise ConfigError(f"no frontend reads {source} (file suffixes read: {known}){hint}")
    names = sorted(n for fe in frontends for n in fe.names())
    raise ConfigError(f"unknown network '{source}': not a model file, nor a named network ({', '.join(names) or 'none'})")


def dtypes_for(precision: Precision, target_cls: Any) -> tuple[str, str]:
    """A layer's dtypes on a target: int8 layers as u8 x s8 -> s32; float ones in the target's
    default dtypes (tensorcore: fp16) or, on int8 targets (dlboost), as their int8 equivalent,
    what a quantized deployment of the model runs."""
    default = getattr(target_cls, "default_dtypes", None)
    if precision == "float" and default:
        return default
    return ("int8", "int32")


@dataclass
class NetworkTask:
    """A layer on a target: its task, or why the target cannot tune it."""

    layer: Layer
    spec: TaskSpec | None
    task: Task | None
    reason: str | None = None

    @property
    def workload_key(self) -> str | None:
        return self.task.workload_key if self.task else None


def network_tasks(network: Network, target: PluginRef, reg: Registry, dtypes: tuple[str, str] | None = None) -> list[NetworkTask]:
    """Every layer as a task on ``target``; a layer the target or operator refuses gets ``reason``."""
    target_cls = reg.get("target", target.name).factory
    out = []
    for layer in network.layers:
        in_dtype, out_dtype = dtypes or dtypes_for(layer.precision, target_cls)
        if layer.out_dtype and dtypes is None and in_dtype == "int8":
            out_dtype = layer.out_dtype
        try:
            spec = TaskSpec(target=target, op=layer.op, shape=layer.shape, in_dtype=in_dtype, out_dtype=out_dtype)
            out.append(NetworkTask(layer, spec, Task(spec, reg)))
        except HeronError as exc:
            out.append(NetworkTask(layer, None, None, str(exc)))
    return out
