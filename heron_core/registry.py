"""Plugin discovery: every implementation (the core's own defaults included) comes from a
module registered under the entry-point group ``heron`` and implementing :mod:`hookspecs`."""

from __future__ import annotations

import difflib
import importlib.metadata as md
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import pluggy
from pydantic import BaseModel, ConfigDict

from heron_core import hookspecs
from heron_core.errors import ConfigError, PluginError

Kind = Literal["target", "operator", "searcher", "cost_model", "runner", "frontend"]
KINDS: dict[Kind, str] = {
    "target": "heron_targets",
    "operator": "heron_operators",
    "searcher": "heron_searchers",
    "cost_model": "heron_cost_models",
    "runner": "heron_runners",
    "frontend": "heron_frontends",
}
ENTRY_POINT_GROUP = "heron"

# Where the implementations named in DESIGN.md live, for "not installed" hints.
KNOWN_DISTRIBUTIONS: dict[str, str] = {
    "target:dlboost": "heron-cpu-dlboost",
    "target:tensorcore": "heron-gpu-tensorcore",
    "searcher:cga": "heron-search-ga",
    "searcher:ga": "heron-search-ga",
    "searcher:sa": "heron-search-ga",
    "searcher:random": "heron-search-ga",
    "cost_model:gbdt": "heron-model-gbdt",
    "frontend:onnx": "heron-frontend-onnx",
}


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class PluginSpec:
    """One named implementation of an extension point.

    ``params`` validates the plugin's own configuration section; ``factory`` is the class or
    callable the framework instantiates (for operators: the Operator subclass itself).
    """

    kind: Kind
    name: str
    factory: Callable[..., Any]
    params: type[BaseModel] = NoParams
    description: str = ""
    distribution: str = field(default="?", compare=False)
    version: str = field(default="?", compare=False)


class Registry:
    """All plugin specs found through entry points (plus any passed in ``extra``)."""

    def __init__(self, extra: list[tuple[str, object]] = (), entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.broken: dict[str, str] = {}
        self._dist: dict[str, tuple[str, str]] = {}
        if entry_points:
            for ep in md.entry_points(group=ENTRY_POINT_GROUP):
                dist = (ep.dist.name, ep.dist.version) if ep.dist else ("?", "?")
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not take the others down
                    self.broken[f"{ep.name} ({dist[0]})"] = f"{type(exc).__name__}: {exc}"
                    continue
                self._register(ep.name, module, dist)
        for name, plugin in extra:
            self._register(name, plugin, (name, "local"))
        self.specs: dict[Kind, dict[str, PluginSpec]] = {k: {} for k in KINDS}
        for kind, hook_name in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                dist, version = self._dist[impl.plugin_name]
                for spec in impl.function() or []:
                    self._add(PluginSpec(**{**spec.__dict__, "distribution": dist, "version": version}))

    def _register(self, name: str, plugin: object, dist: tuple[str, str]) -> None:
        if self.pm.has_plugin(name):
            name = f"{name}@{dist[0]}"
        self.pm.register(plugin, name=name)
        self._dist[name] = dist

    def _add(self, spec: PluginSpec) -> None:
        table = self.specs[spec.kind]
        if spec.name in table:
            other = table[spec.name]
            raise PluginError(
                f"{spec.kind} '{spec.name}' is registered twice: by {other.distribution} "
                f"{other.version} and by {spec.distribution} {spec.version}; uninstall one of them"
            )
        table[spec.name] = spec

    def names(self, kind: Kind) -> list[str]:
        return sorted(self.specs[kind])

    def get(self, kind: Kind, name: str) -> PluginSpec:
        try:
            return self.specs[kind][name]
        except KeyError:
            raise ConfigError(self._unknown_message(kind, name)) from None

    def _unknown_message(self, kind: Kind, name: str) -> str:
        available = self.names(kind)
        label = kind.replace("_", " ")
        hint = KNOWN_DISTRIBUTIONS.get(f"{kind}:{name}")
        if hint:
            msg = f"{label} '{name}' is not installed: pip install {hint}"
        else:
            msg = f"unknown {label} '{name}'"
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            if close:
                msg += f"; did you mean '{close[0]}'?"
        msg += f" (available: {', '.join(available) or 'none'})"
        if self.broken:
            msg += "; plugins that failed to load: " + ", ".join(self.broken)
        return msg

    def all_specs(self) -> list[PluginSpec]:
        return [spec for kind in KINDS for spec in sorted(self.specs[kind].values(), key=lambda s: s.name)]


_default: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, built on first use from the installed entry points."""
    global _default
    if _default is None:
        _default = Registry()
    return _default
