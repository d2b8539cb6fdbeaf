"""Every TVM-version-specific call Heron makes (TVM 0.27: tvm.compile, Executable,
runtime.tensor, targets as dicts), so the rest of the code reads the same across versions."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("heron-core", "apache-tvm", "apache-tvm-ffi", "numpy", "ortools"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


NO_STORAGE_REWRITE = "tirx.disable_storage_rewrite"


def build(mod, target: dict[str, Any], pass_config: dict[str, Any] | None = None):
    """Compile a scheduled IRModule (with the target's pass options); returns a TVM Executable."""
    import tvm

    tgt = tvm.target.Target(target)
    config = dict(pass_config or {})
    try:
        with tgt, tvm.transform.PassContext(config=config):
            return tvm.compile(mod, target=tgt)
    except Exception as e:
        # TVM 0.27's StorageRewrite may reuse a dead uint8 buffer's storage for an int32 one (an AMX call of one
        # tile and one K step whose C cache is first written after the A cache's last read) and then reject
        # its own tvm_access_ptr. Without that pass the kernel builds (and is checked as usual).
        if "tvm_access_ptr element type must match" not in str(e) or config.get(NO_STORAGE_REWRITE):
            raise
    with tgt, tvm.transform.PassContext(config={**config, NO_STORAGE_REWRITE: True}):
        return tvm.compile(mod, target=tgt)


def export(executable, path: str) -> None:
    executable.export_library(path)


def load(path: str):
    import tvm

    return tvm.runtime.load_module(path)


def assembly(executable) -> str:
    return executable.mod.inspect_source("asm")


def to_device(arrays: Sequence[np.ndarray], device) -> list:
    import tvm

    return [tvm.runtime.tensor(a, device) for a in arrays]


def device(kind: str):
    import tvm

    return tvm.device(kind, 0)


def time_kernel(module, device, args, number: int, repeat: int, min_repeat_ms: int, cache_flush: bool) -> list[float]:
    """Seconds per call, one entry per repeat (each the mean over ``number`` calls)."""
    evaluator = module.time_evaluator(
        "main",
        device,
        number=number,
        repeat=repeat,
        min_repeat_ms=min_repeat_ms,
        f_preproc="cache_flush_cpu_non_first_arg" if cache_flush else "",
    )
    return [float(x) for x in evaluator(*args).results]
