"""``heron export``: the best record of each chosen workload, rebuilt, re-verified against numpy
and written as a library (one compiled module + its TVMScript per kernel, and manifest.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from heron_core import tvm_compat
from heron_core.errors import ConfigError, HeronError
from heron_core.library import FORMAT, Library, sha256
from heron_core.records import Record, RecordDB
from heron_core.registry import Registry
from heron_core.runner import outputs_match
from heron_core.task import Task, TaskSpec


def select(db: RecordDB, *, op: str | None, target: str | None, workload: str | None, everything: bool) -> list[Record]:
    """The best record of every workload matching the filters; an error for a match with no success."""
    if not (op or target or workload or everything):
        raise ConfigError("choose what to export: --op, --target, --workload, or --all")

    def wanted(wk: str, tk: str) -> bool:
        return (not op or wk.startswith(f"{op}[")) and (not target or target in tk) and (not workload or workload in wk)

    matches = [(wk, tk, ok) for wk, tk, _, ok in db.summary() if wanted(wk, tk)]
    if not matches:
        raise ConfigError(f"no records in {db.path} match the selection")
    failed = [f"{wk} on {tk}" for wk, tk, ok in matches if not ok]
    if failed:
        raise ConfigError(f"no successful record to export for: {'; '.join(failed)}")
    best = {(r.workload_key, r.target_key): r for r in db.best()}
    return [best[(wk, tk)] for wk, tk, _ in matches]


def export_record(record: Record, out: Path, reg: Registry) -> dict:
    """Rebuild ``record``'s kernel, check it against numpy, write it under ``out``; the manifest entry."""
    task = Task(TaskSpec.model_validate(record.task), reg)
    task.target.check_host()
    task.target.prepare_process()
    mod = task.context.apply(task, record.point)
    stem = re.sub(r"[^\w.-]+", "_", f"{record.workload_key}@{record.target_key}").strip("_")
    module, script = f"{stem}.so", f"{stem}.py"
    tvm_compat.export(tvm_compat.build(mod, task.target.tvm_target(), task.target.pass_config()), str(out / module))
    (out / script).write_text(mod.script())
    _verify(task, out / module, record)
    layouts = task.context.arg_layouts(task)
    constants = task.context.constant_args(task)
    params = [
        {
            "name": t.name,
            "role": t.role,
            "shape": list(t.shape),
            "dtype": t.dtype,
            "layout": layouts[t.name].model_dump() if t.name in layouts else None,
            "kernel_shape": list(layouts[t.name].shape(t.shape) if t.name in layouts else t.shape),
        }
        for t in [*task.op.inputs, *constants, task.op.output]
    ]
    for param in params:
        if param["role"] == "constant":  # the library passes it on every call
            param["file"] = f"{stem}.{param['name']}.npy"
            np.save(out / param["file"], task.op.constant_value(param["name"]))
    files = [module, script] + [p["file"] for p in params if "file" in p]
    kind = task.target.tvm_target()["kind"]
    return {
        "workload_key": record.workload_key,
        "op": task.op.name,
        "shape": task.op.shape.model_dump(),
        "in_dtype": task.spec.in_dtype,
        "out_dtype": task.spec.out_dtype,
        "target_key": record.target_key,
        "target_info": task.target.info(),
        "device": "cpu" if kind == "llvm" else kind,
        "requires_cpu_flags": task.target.required_cpu_flags(),
        "process_setup": task.target.process_setup(),
        "params": params,
        "latency_s": record.latency_s,
        "gops": task.op.op_count() / record.latency_s / 1e9,
        "record_id": record.id,
        "point": record.point,
        "versions": tvm_compat.versions(),
        "module": module,
        "script": script,
        "sha256": {name: sha256(out / name) for name in files},  # checked on load
    }


def _verify(task: Task, module_path: Path, record: Record) -> None:
    inputs = task.op.random_inputs(seed=1)  # not the tuning inputs: a fresh check
    args = tvm_compat.to_device(task.context.kernel_args(task, inputs), task.target.device())
    tvm_compat.load(str(module_path))["main"](*args)
    if not outputs_match(args[-1].numpy(), task.op.reference(inputs), task.context.tolerance(task)):
        raise HeronError(f"record {record.id} ({record.workload_key}) rebuilt here no longer matches the numpy reference")


def export_library(records: list[Record], out: Path, reg: Registry) -> list[dict]:
    """Write ``records`` into the library at ``out`` (created, or updated: same keys replaced)."""
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = Library.read_manifest(manifest_path) if manifest_path.exists() else {"heron_library": FORMAT, "kernels": []}
    entries = [export_record(r, out, reg) for r in records]
    fresh = {(e["workload_key"], e["target_key"]) for e in entries}
    kept = [e for e in manifest["kernels"] if (e["workload_key"], e["target_key"]) not in fresh]
    manifest["kernels"] = kept + entries
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return entries
