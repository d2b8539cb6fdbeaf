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


# --- Relax (heron build, load_model) -----------------------------------------------------------
def relax_from_onnx(model, custom_op: str, calls: list[dict]):
    """Import ``model`` into Relax; its ``custom_op`` nodes (attribute ``kernel`` = index into
    ``calls``) become ``R.call_dps_packed`` of a kernel, constants passed after the activation.
    TVM's importer has no hook for new ops: its converter map is extended while importing."""
    from tvm import relax
    from tvm.relax.frontend.onnx import onnx_frontend as frontend

    class KernelCall(frontend.OnnxOpConverter):
        @classmethod
        def _impl_v1(cls, bb, inputs, attr, params):
            call = calls[attr["kernel"]]
            x = bb.normalize(inputs[0])
            if call["pre_pad"]:
                x = bb.emit(relax.op.nn.pad(x, [v for pair in call["pre_pad"] for v in pair], "constant", float(call["pad_value"])))
            if tuple(int(d) for d in x.ty.shape) != call["in_shape"]:
                x = bb.emit(relax.op.reshape(x, call["in_shape"]))
            consts = [relax.const(c) for c in call["consts"]]
            out_sinfo = relax.TensorType(call["kernel_out"], call["dtype"])
            y = bb.emit(relax.call_dps_packed(call["symbol"], relax.Tuple([x, *consts]), out_sinfo))
            if call["kernel_out"] != call["out_shape"]:
                y = bb.emit(relax.op.reshape(y, call["out_shape"]))
            return y

    original = frontend._get_convert_map
    frontend._get_convert_map = lambda: {**original(), custom_op: KernelCall}
    try:
        mod = frontend.from_onnx(model)
    finally:
        frontend._get_convert_map = original
    return relax.transform.DeadCodeElimination()(mod)


def build_relax(mod, target: dict[str, Any], pipeline=None):
    """Compile a Relax module; ``pipeline(Target)`` returns the Relax pass pipeline (TVM's default if None)."""
    import tvm

    tgt = tvm.target.Target(target)
    with tgt:
        return tvm.compile(mod, target=tgt, relax_pipeline=pipeline(tgt) if pipeline else "default")


def register_function(name: str, func) -> None:
    import tvm

    tvm.register_global_func(name, func, override=True)


def relax_vm(path: str):
    import tvm
    from tvm import relax

    return relax.VirtualMachine(tvm.runtime.load_module(path), tvm.cpu())


def relax_run(vm, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    import tvm

    result = vm["main"](*[tvm.runtime.tensor(a, tvm.cpu()) for a in arrays])
    if isinstance(result, (tuple, list)) or type(result).__name__ in ("Array", "Tuple"):
        return [r.numpy() for r in result]
    return [result.numpy()]


def relax_profile(vm, arrays: Sequence[np.ndarray]) -> dict[str, float]:
    """Seconds per called function symbol over one run of ``vm["main"]`` (the VM's instrument hook)."""
    import time

    import tvm

    args = [tvm.runtime.tensor(a, tvm.cpu()) for a in arrays]
    spent: dict[str, float] = {}
    started: list[float] = []

    def instrument(func, symbol, before_run, ret_value, *call_args):
        if before_run:
            started.append(time.perf_counter())
        else:
            spent[symbol] = spent.get(symbol, 0.0) + time.perf_counter() - started.pop()
        return 0

    vm.set_instrument(instrument)
    try:
        vm["main"](*args)
    finally:
        vm.set_instrument(None)
    return spent
