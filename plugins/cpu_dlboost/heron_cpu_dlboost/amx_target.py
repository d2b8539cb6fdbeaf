"""Target ``amx``: x86 CPUs with Intel AMX (Advanced Matrix Extensions: Xeon Sapphire Rapids and later),
int8 (u8 x s8 -> s32, tdpbusd) and bf16 (bf16 x bf16 -> f32, tdpbf16ps) operators on tile registers."""

from __future__ import annotations

from typing import Literal

from heron_core.errors import ConfigError, TargetUnavailable
from heron_cpu_dlboost import amx_intrin
from heron_cpu_dlboost.amx_context import AMXContext
from heron_cpu_dlboost.cpu import llvm_cpu_features
from heron_cpu_dlboost.depthwise_context import is_depthwise
from heron_cpu_dlboost.target import INT8_DTYPES, CPUParams, DLBoostTarget, check_groups, int8_output

# in_dtype -> (out_dtype, /proc/cpuinfo flag, LLVM feature)
DTYPES = {
    "int8": ("int32", "amx_int8", "amx-int8"),
    "uint8": ("int32", "amx_int8", "amx-int8"),
    "bfloat16": ("float32", "amx_bf16", "amx-bf16"),
}


class AMXParams(CPUParams):
    microkernel: Literal["amx", "generic"] = "amx"
    """'generic' computes the tile blocks without AMX: to check schedules on other CPUs."""


class AMXTarget(DLBoostTarget):
    """Shares the dlboost target's host description (CPU flags, caches, cores, LLVM CPU, thread pool)."""

    name = "amx"
    params: AMXParams

    def check_host(self) -> None:
        if self.params.microkernel == "generic":
            return
        missing = [f for f in ("amx_tile", "amx_int8", "amx_bf16") if f not in self.cpu.flags]
        if missing:
            raise TargetUnavailable(
                f"target 'amx' needs Intel AMX (tile registers, tdpbusd / tdpbf16ps), which this CPU ({self.cpu.model}) "
                f"lacks ({', '.join(repr(f) for f in missing)} not among the /proc/cpuinfo flags; AMX came with Xeon "
                "Sapphire Rapids). Use target 'dlboost' for AVX-512 VNNI, or, to exercise the AMX schedules anyway "
                "(correct, not fast), --target-param microkernel=generic."
            )
        features = llvm_cpu_features(self.mcpu)
        if not {"amx-tile", "amx-int8", "amx-bf16"} <= features:
            raise TargetUnavailable(f"LLVM CPU '{self.mcpu}' has no AMX features; pass an AMX CPU as mcpu (e.g. sapphirerapids)")
        self.prepare_process()  # the OS may still refuse the tile registers: say so now, not with a SIGILL later

    def check_task(self, task) -> None:
        op, spec = task.op, task.spec
        if op.dot_hint is None:
            raise ConfigError(f"target 'amx' has no schedule template for operator '{op.name}'")
        if spec.in_dtype not in DTYPES or (spec.out_dtype != DTYPES[spec.in_dtype][0] and not int8_output(task)):
            raise ConfigError(
                f"target 'amx' computes {INT8_DTYPES} and bf16 x bf16 -> f32 (in_dtype bfloat16, out_dtype float32), "
                f"not {spec.in_dtype} -> {spec.out_dtype}"
            )
        if self.params.microkernel == "amx" and DTYPES[spec.in_dtype][1] not in self.cpu.flags and self.cpu.has_amx:
            raise ConfigError(f"this CPU has AMX but not {DTYPES[spec.in_dtype][1]}: no {spec.in_dtype} tiles")
        if is_depthwise(task):
            raise ConfigError(
                f"{op.name} {op.shape_label()}: target 'amx' does not compute depthwise convolutions: with one input "
                "channel per group a tile product has no channel reduction (its taps per channel would fill 4 bytes of "
                "each 64-byte row); use --target dlboost, whose depthwise micro-kernel does one 4-tap dot per channel"
            )
        check_groups("amx", op, amx_intrin.LANES)
        self.context().layout(task)  # an operator without a row axis is refused here, with its reason

    def context(self) -> AMXContext:
        if not hasattr(self, "_context"):
            self._context = AMXContext(self)
        return self._context

    def context_for(self, task) -> AMXContext:
        return self.context()

    def key(self) -> str:
        suffix = "" if self.params.microkernel == "amx" else f"/{self.params.microkernel}"
        return f"amx/{self.mcpu}/{self.cores}c{suffix}"

    def required_cpu_flags(self) -> list[str]:
        if self.params.microkernel == "amx":
            return ["amx_tile", "amx_int8", "amx_bf16", "avx512f"]
        return super().required_cpu_flags()

    def process_setup(self) -> list[str]:
        return ["linux_amx_tiledata"] if self.params.microkernel == "amx" else []

    def info(self) -> dict:
        return {**super().info(), "amx_bf16": "amx_bf16" in self.cpu.flags}
