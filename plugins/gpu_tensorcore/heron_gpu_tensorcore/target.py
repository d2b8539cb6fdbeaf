"""Target ``tensorcore``: fp16 operators on NVIDIA Tensor Cores (CUDA WMMA, and mma.sync + ldmatrix
on sm_80 and newer), sm_70 and newer."""

from __future__ import annotations

import os
import shutil
from typing import Literal

from pydantic import BaseModel, ConfigDict

from heron_core.errors import ConfigError, TargetUnavailable
from heron_core.target import Target
from heron_gpu_tensorcore.context import TensorCoreContext
from heron_gpu_tensorcore.device import GpuInfo, query
from heron_gpu_tensorcore.gemm_view import VIEWS

OUT_DTYPES = ("float16", "float32")


class TensorCoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arch: str | None = None
    """CUDA architecture to compile for (e.g. sm_90); default: the GPU's, else sm_90."""
    device_id: int = 0
    """Which GPU to read the limits of and run on."""
    compiler: Literal["nvcc", "nvrtc"] = "nvcc"
    """TVM's CUDA compiler (nvrtc needs the cuda-bindings package)."""


class TensorCoreTarget(Target):
    name = "tensorcore"
    default_dtypes = ("float16", "float16")  # `heron tune --target tensorcore` without --in-dtype/--out-dtype
    params: TensorCoreParams

    def __init__(self, params: TensorCoreParams):
        super().__init__(params)
        self.gpu: GpuInfo = query(params.device_id)
        self.arch = params.arch or self.gpu.arch
        # TVM reads its CUDA compiler from the environment, in whichever process builds
        os.environ.setdefault("TVM_CUDA_COMPILE_MODE", params.compiler)

    @property
    def mma_capable(self) -> bool:
        """mma.sync.m16n8k16 with fp16 operands and ldmatrix: sm_80 and newer."""
        return int(self.arch.removeprefix("sm_").rstrip("a")) >= 80

    def check_host(self) -> None:
        if not self.gpu.present:
            raise TargetUnavailable(
                f"target 'tensorcore' needs an NVIDIA GPU and its driver; none is usable here ({self.gpu.source}). "
                "Kernels can still be built for sm_90 (see the plugin's tests)."
            )
        if self.params.compiler == "nvcc" and not shutil.which("nvcc"):
            raise TargetUnavailable("target 'tensorcore' compiles with nvcc, which is not on PATH (or pass compiler=nvrtc)")
        major = int(self.arch.removeprefix("sm_").rstrip("a")) // 10
        if major < 7:
            raise TargetUnavailable(f"target 'tensorcore' needs Tensor Cores (sm_70 or newer), not {self.arch}")

    def check_task(self, task) -> None:
        op = task.op
        if op.name not in VIEWS:
            raise ConfigError(
                f"target 'tensorcore' has no schedule template for operator '{op.name}' (it has: {', '.join(sorted(VIEWS))})"
            )
        if getattr(op.shape, "channels_last", False):
            raise ConfigError(
                "target 'tensorcore' takes convolutions channels-first and stores their activations channels-last "
                "itself (a packed argument layout, see DEVELOPERS.md): leave out channels_last=1"
            )
        if task.spec.in_dtype != "float16" or task.spec.out_dtype not in OUT_DTYPES:
            raise ConfigError(
                "target 'tensorcore' computes fp16 x fp16 with fp16 or fp32 accumulation (in_dtype float16, out_dtype "
                f"float16 or float32), not {task.spec.in_dtype} -> {task.spec.out_dtype}"
            )
        if op.epilogue is not None:
            raise ConfigError("target 'tensorcore' has no fused epilogues yet (bias, relu): use 'dlboost'")

    def tvm_target(self) -> dict:
        return {"kind": "cuda", "arch": self.arch}

    def pass_config(self) -> dict:
        # cp.async is injected only where the schedule marks a pipeline stage asynchronous
        return {"tirx.use_async_copy": True}

    def runtime_env(self) -> dict[str, str]:
        return {"TVM_CUDA_COMPILE_MODE": self.params.compiler}

    def context(self) -> TensorCoreContext:
        return TensorCoreContext(self)

    def key(self) -> str:
        return f"tensorcore/{self.gpu.name}/{self.arch}"

    def info(self) -> dict:
        g = self.gpu
        return {
            **super().info(),
            "gpu": g.name,
            "limits_from": g.source,
            "max_threads_per_block": g.max_threads_per_block,
            "max_shared_per_block": g.max_shared_per_block,
            "max_registers_per_block": g.max_registers_per_block,
            "sm_count": g.sm_count,
        }
