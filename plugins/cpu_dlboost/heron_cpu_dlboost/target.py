"""Target ``dlboost``: x86 CPUs with AVX-512 VNNI (Intel DL Boost, AMD Zen 4+)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict

from heron_core.errors import ConfigError, TargetUnavailable
from heron_core.limits import Workers, count
from heron_core.target import Target
from heron_cpu_dlboost import intrin
from heron_cpu_dlboost.context import CPUContext
from heron_cpu_dlboost.cpu import host_cpu, llvm_cpu_has_vnni, llvm_host_cpu
from heron_cpu_dlboost.depthwise_context import DepthwiseContext, is_depthwise


class CPUParams(BaseModel):
    """What every x86 target of this plugin is told about the host (each adds its ``microkernel``)."""

    model_config = ConfigDict(extra="forbid")
    mcpu: str | None = None
    """LLVM CPU to compile for; default: this machine's (as LLVM names it)."""
    num_cores: Workers | None = None
    """Threads a kernel may use; default: the cores this process may run on."""
    l1_kib: count(2**20) | None = None
    l2_kib: count(2**20) | None = None
    """Per-core cache capacities for the tiling rules; default: read from sysfs."""


class DLBoostParams(CPUParams):
    microkernel: Literal["vnni", "generic"] = "vnni"
    """'generic' computes the 16x4 block without VNNI: to check schedules on other CPUs."""


class DLBoostTarget(Target):
    name = "dlboost"
    params: DLBoostParams

    def __init__(self, params: DLBoostParams):
        super().__init__(params)
        self.cpu = host_cpu()
        self.mcpu = params.mcpu or llvm_host_cpu()
        self.cores = params.num_cores or self.cpu.cores
        self.l1_bytes = (params.l1_kib * 1024) if params.l1_kib else self.cpu.l1d_bytes
        self.l2_bytes = (params.l2_kib * 1024) if params.l2_kib else self.cpu.l2_bytes

    def check_host(self) -> None:
        if self.params.microkernel == "generic":
            return
        if not self.cpu.has_vnni:
            raise TargetUnavailable(
                f"target 'dlboost' needs AVX-512 VNNI, which this CPU ({self.cpu.model}) lacks "
                "('avx512_vnni' is not among the /proc/cpuinfo flags). To exercise the schedules "
                "anyway (correct, not fast), pass --target-param microkernel=generic."
            )
        if not llvm_cpu_has_vnni(self.mcpu):
            raise TargetUnavailable(f"LLVM CPU '{self.mcpu}' has no avx512vnni; pass a VNNI CPU as mcpu")

    def check_task(self, task) -> None:
        op = task.op
        if op.dot_hint is None:
            raise ConfigError(f"target 'dlboost' has no schedule template for operator '{op.name}'")
        if not int8_output(task):
            raise ConfigError(f"target 'dlboost' computes {INT8_DTYPES}, not {task.spec.in_dtype} -> {task.spec.out_dtype}")
        if is_depthwise(task):
            return  # DepthwiseContext pads channels and taps itself
        check_groups(self.name, op, intrin.LANES)

    def tvm_target(self) -> dict:
        return {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.cores}

    def runtime_env(self) -> dict[str, str]:
        return {"TVM_NUM_THREADS": str(self.cores)}

    def context(self) -> CPUContext:
        return CPUContext(self)

    def context_for(self, task):
        return DepthwiseContext(self) if is_depthwise(task) else self.context()

    def key(self) -> str:
        suffix = "" if self.params.microkernel == "vnni" else f"/{self.params.microkernel}"
        return f"dlboost/{self.mcpu}/{self.cores}c{suffix}"

    def required_cpu_flags(self) -> list[str]:
        if self.params.microkernel == "vnni":
            return ["avx512f", "avx512bw", "avx512_vnni"]
        # the generic micro-kernel is compiled for this machine's CPU: whatever vector ISA it has
        return sorted(self.cpu.flags & {"avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"})

    def peak_gops(self) -> float | None:
        """The vpdpbusd peak on ``num_cores`` threads, measured once per process."""
        return vnni_peak_gops(self.mcpu, self.cores) if self.params.microkernel == "vnni" and self.cpu.has_vnni else None

    def info(self) -> dict:
        return {
            **super().info(),
            "cpu": self.cpu.model,
            "vnni": self.cpu.has_vnni,
            "amx": self.cpu.has_amx,
            "l1d_bytes": self.l1_bytes,
            "l2_bytes": self.l2_bytes,
        }


@lru_cache(maxsize=None)
def vnni_peak_gops(mcpu: str, cores: int) -> float:
    from heron_cpu_dlboost.peak import measure_peak

    return measure_peak(cores, mcpu)


INT8_DTYPES = (
    "u8 x s8 -> s32 (in_dtype int8 or uint8, out_dtype int32; uint8 or int8 requantized, float32 dequantized, "
    "for operators with an epilogue)"
)


def int8_output(task) -> bool:
    """A u8 x s8 product's output: s32, or what the operator's fused epilogue makes of it (None where it has none)."""
    return task.spec.in_dtype in ("int8", "uint8") and (task.spec.out_dtype == "int32" or task.op.epilogue is not None)


def check_groups(target: str, op, lanes: int) -> None:
    """A grouped convolution runs on the general template when a lane block lies within one group."""
    groups = getattr(op.shape, "group_count", 1)
    if groups > 1 and op.shape.group_channels[1] % lanes:
        raise ConfigError(
            f"{op.name} {op.shape_label()}: target '{target}' computes a grouped convolution in blocks of {lanes} output "
            f"channels of one group; {op.shape.group_channels[1]} per group is not a multiple of {lanes}"
        )
