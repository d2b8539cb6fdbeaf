"""TuneConfig: what ``heron tune`` runs, from CLI flags and/or a JSON/TOML file.

Each plugin section names a plugin and carries that plugin's own parameters, validated by
the plugin's model: ``search = {name = "crand", candidates_per_trial = 4}``. The original
Heron's flat ``quick_start.json`` keys are accepted and mapped onto the same model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from heron_core.errors import ConfigError
from heron_core.limits import MAX_CASES, BatchSize, Seed, Trials
from heron_core.registry import Kind, Registry
from heron_core.task import PluginRef, TaskSpec, explain, make_operator, validate_params


class Section(PluginRef):
    """``"name"`` or ``{name: ..., <the plugin's params>...}``."""

    @model_validator(mode="before")
    @classmethod
    def _flatten(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and isinstance(data.get("params", {}), dict):
            params = {k: v for k, v in data.items() if k not in ("name", "params")}
            return {"name": data.get("name"), "params": {**data.get("params", {}), **params}}
        return data


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    op: str = "gemm"
    shape: dict[str, int] | list[int] | str | None = None
    """Named (``{M: 64, ...}``), positional in the operator's order, or a preset's name (``C2D1``),
    optionally with named overrides (``C2D1,channels_last=1``); default: the operator's."""


class TuneConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Section = Section(name="dlboost")
    cases: list[Case] = Field(default_factory=lambda: [Case()], min_length=1, max_length=MAX_CASES)
    in_dtype: str = "int8"
    out_dtype: str = "int32"
    trials: Trials = 32
    batch_size: BatchSize = 16
    search: Section = Section(name="crand")
    model: Section = Section(name="none")
    runner: Section = Section(name="local")
    db: Path | None = None
    seed: Seed = 0


PLUGIN_SECTIONS = ("target", "search", "model", "runner")

# Original Heron key -> (section, our key); a section of None means a top-level field.
LEGACY_KEYS: dict[str, tuple[str | None, str]] = {
    "target_name": (None, "target"),
    "platform": (None, "target"),
    "method": (None, "search"),
    "opt_method": (None, "search"),
    "max_trials": (None, "trials"),
    "measure_time_per_round": (None, "batch_size"),
    "in_dtype": (None, "in_dtype"),
    "out_dtype": (None, "out_dtype"),
    "cases": (None, "cases"),
    "seed": (None, "seed"),
    "runner_number": ("runner", "number"),
    "runner_repeat": ("runner", "repeat"),
    "runner_timeout": ("runner", "run_timeout"),
    "build_timeout": ("runner", "build_timeout"),
    "parallel_num": ("runner", "parallel"),
    "pop_num": ("search", "pop_num"),
    "iter_walks": ("search", "iter_walks"),
    "history_topk": ("search", "history_topk"),
    "select_num": ("search", "select_num"),
    "crossover_key_ratio": ("search", "crossover_key_ratio"),
    "temperature": ("search", "temperature"),
    "loss_type": ("model", "loss_type"),
    "feature_type": ("model", "feature_type"),
}
# Keys of the original that have no meaning here (paths, flags of its own driver).
LEGACY_IGNORED = {"out_name", "verbose", "use_cost_model", "parallel", "feasible_file_path", "log_dir", "task_name"}


def is_legacy(data: dict) -> bool:
    return "config" in data or any(k in data for k in ("max_trials", "target_name", "method", "runner_number"))


def from_legacy(data: dict) -> tuple[dict, list[str]]:
    """Map an original Heron config onto TuneConfig's shape; returns it and the notes to show."""
    inner = data.get("config", {})
    if not isinstance(inner, dict):
        raise ConfigError(f"original Heron config: 'config' must be an object, got {type(inner).__name__}")
    flat = {**inner, **{k: v for k, v in data.items() if k != "config"}}
    out: dict[str, Any] = {"runner": {"name": "local"}, "search": {}, "model": {}}
    notes = []
    for key, value in flat.items():
        if key in LEGACY_IGNORED:
            notes.append(f"ignored original key '{key}'")
            continue
        if key not in LEGACY_KEYS:
            raise ConfigError(f"unknown key '{key}' in original Heron config (known: {', '.join(sorted(LEGACY_KEYS))})")
        section, name = LEGACY_KEYS[key]
        if section:
            out[section][name] = value
        elif name == "target":
            out["target"] = legacy_target(value)
        elif name == "search":
            out["search"]["name"] = str(value).lower()
        elif name == "cases":
            out["cases"] = legacy_cases(value)
        else:
            out[name] = value
    out["_legacy_plugin_keys"] = {s: sorted(k for k in out[s] if k != "name") for s in ("search", "model", "runner")}
    return out, notes


_LEGACY_CASES = TypeAdapter(dict[str, tuple[str, list[int]]])


def legacy_cases(value: Any) -> list[dict]:
    """The original's ``cases``: ``{"0": ["gemm", [M, K, N]], ...}``."""
    try:
        cases = _LEGACY_CASES.validate_python(value)
    except ValidationError as exc:
        raise ConfigError(f"original Heron config: cases must map names to [operator, [shape...]]: {explain(exc)}") from None
    return [{"op": op, "shape": shape} for op, shape in cases.values()]


def legacy_target(value: str) -> str:
    v = str(value)
    if v.startswith("llvm") or v in ("x86", "cpu"):
        return "dlboost"
    if v.startswith("cuda") or v == "nvidia":
        return "tensorcore"
    return v


def read_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object/table at the top level")
    return data


def merge(base: dict, overrides: dict) -> dict:
    """Overrides win; a plugin section given by name only keeps the file's params if the name matches."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            same = value.get("name") in (None, out[key].get("name"))
            out[key] = {**(out[key] if same else {}), **value}
        else:
            out[key] = value
    return out


def build_config(data: dict) -> TuneConfig:
    try:
        return TuneConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"bad config: {explain(exc)}") from None


@dataclass
class Plan:
    """A validated configuration: tasks to tune and every plugin's checked parameters."""

    config: TuneConfig
    tasks: list[TaskSpec]
    params: dict[str, BaseModel]
    notes: list[str]


def parse_shape(op_cls, shape: dict[str, int] | list[int] | str | None) -> dict[str, int]:
    """A case's shape -> the operator's named shape parameters (not yet range-checked).

    Parameters left out take the field's default (stride, pad, ...) or, for required ones,
    the operator's default shape."""
    op, fields = op_cls.name, op_cls.Shape.model_fields
    required = [k for k, f in fields.items() if f.is_required()]
    if shape is None:
        return dict(op_cls.default_shape)
    if isinstance(shape, str):
        name, _, rest = (x.strip() for x in shape.partition(","))
        if name not in op_cls.presets:
            presets = ", ".join(op_cls.presets) or "none"
            raise ConfigError(f"operator '{op}' has no shape preset '{name}' (presets: {presets})")
        overrides = [p.strip() for p in rest.split(",") if p.strip()]
        if not all(re.fullmatch(r"\w+\s*=\s*-?\d+", p) for p in overrides):
            raise ConfigError(f"shape '{shape}': a preset takes NAME=INT overrides after it, e.g. {name},channels_last=1")
        named = {k.strip(): int(v) for k, v in (p.split("=") for p in overrides)}
        return parse_shape(op_cls, {**op_cls.presets[name], **named})
    if isinstance(shape, list):
        if not len(required) <= len(shape) <= len(fields):
            raise ConfigError(
                f"operator '{op}' takes {len(required)} to {len(fields)} shape values ({','.join(fields)}), "
                f"got {len(shape)}: {shape}"
            )
        return dict(zip(fields, shape))
    aliases = op_cls.Shape.aliases
    named = {aliases.get(k, k): v for k, v in shape.items()}
    unknown = [k for k in named if k not in fields]
    if unknown:
        raise ConfigError(f"operator '{op}' has no shape parameter {', '.join(unknown)} (it takes {','.join(fields)})")
    return {**{k: v for k, v in op_cls.default_shape.items() if k in required}, **named}


def plan(cfg: TuneConfig, reg: Registry, legacy_keys: dict[str, list[str]] | None = None) -> Plan:
    """Resolve every name against the registry and validate every section; raises ConfigError."""
    params: dict[str, BaseModel] = {}
    notes: list[str] = []
    sections: dict[str, tuple[Kind, Section]] = {
        "target": ("target", cfg.target),
        "search": ("searcher", cfg.search),
        "model": ("cost_model", cfg.model),
        "runner": ("runner", cfg.runner),
    }
    for key, (kind, ref) in sections.items():
        spec = reg.get(kind, ref.name)
        given = dict(ref.params)
        for k in (legacy_keys or {}).get(key, []):  # original keys go only to plugins that take them
            if k not in spec.params.model_fields:
                given.pop(k, None)
                notes.append(f"original key '{k}' has no meaning for {kind.replace('_', ' ')} '{ref.name}': ignored")
        for k in given:
            if k not in spec.params.model_fields:
                owners = [s for s in reg.all_specs() if k in s.params.model_fields]
                where = f"; it belongs to {owners[0].kind.replace('_', ' ')} '{owners[0].name}'" if owners else ""
                accepted = ", ".join(spec.params.model_fields) or "none"
                raise ConfigError(f"{kind.replace('_', ' ')} '{ref.name}' has no parameter '{k}'{where} (it takes: {accepted})")
        params[key] = validate_params(reg, kind, Section(name=ref.name, params=given))
    tasks = []
    target_ref = PluginRef(name=cfg.target.name, params=params["target"].model_dump(exclude_unset=True))
    # dtypes the config leaves unset: the target's own defaults where it has them (tensorcore: fp16)
    defaults = getattr(reg.get("target", cfg.target.name).factory, "default_dtypes", None) or (cfg.in_dtype, cfg.out_dtype)
    in_dtype = cfg.in_dtype if "in_dtype" in cfg.model_fields_set else defaults[0]
    out_dtype = cfg.out_dtype if "out_dtype" in cfg.model_fields_set else defaults[1]
    for case in cfg.cases:
        op_cls = reg.get("operator", case.op).factory
        shape = parse_shape(op_cls, case.shape)
        spec = TaskSpec(target=target_ref, op=case.op, shape=shape, in_dtype=in_dtype, out_dtype=out_dtype)
        make_operator(reg, spec, check_memory=True)
        tasks.append(spec)
    return Plan(cfg, tasks, params, notes)


def load(path: Path | None, overrides: dict) -> tuple[TuneConfig, dict[str, list[str]] | None, list[str]]:
    """File (if any) + CLI overrides -> TuneConfig, the original-format plugin keys, notes."""
    data, notes, legacy = {}, [], None
    if path is not None:
        data = read_file(path)
        if is_legacy(data):
            data, notes = from_legacy(data)
            legacy = data.pop("_legacy_plugin_keys")
    merged = merge(data, overrides)
    for key in PLUGIN_SECTIONS:  # params given without a name go to the default plugin
        if isinstance(merged.get(key), dict) and "name" not in merged[key]:
            merged[key] = {"name": TuneConfig.model_fields[key].default.name, **merged[key]}
    return build_config(merged), legacy, notes
