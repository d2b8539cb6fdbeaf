"""Target ``tensorcore``: fp16 operators on NVIDIA Tensor Cores (CUDA WMMA, and mma.sync + ldmatrix
on sm_80 and newer), sm_70 and newer; on sm_90a, gemm/dense/bmm and the convolutions (implicit GEMMs)
in fp16 or bf16 with wgmma + TMA (wgmma.py)."""

from __future__ import annotations

import os
import shutil
from typing import Literal

from pydantic import BaseModel, ConfigDict

from heron_core.errors import ConfigError, TargetUnavailable
from heron_core.target import Target
from heron_gpu_tensorcore import wgmma
from heron_gpu_tensorcore.context import TensorCoreContext
from heron_gpu_tensorcore.device import GpuInfo, query
from heron_gpu_tensorcore.direct_context import DIRECT_OPS, DirectContext, is_direct
from heron_gpu_tensorcore.gemm_view import VIEWS, view_of

OUT_DTYPES = ("float16", "float32")


class TensorCoreParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    arch: str | None = None
    """CUDA architecture to compile for (e.g. sm_90); default: the GPU's, else sm_90. sm_90a (Hopper)
    schedules gemm, dense, bmm and conv1d/2d/3d/dil with wgmma + TMA (fp16 or bf16 in, fp32 accumulation)."""
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

    @property
    def wgmma_capable(self) -> bool:
        """wgmma and setmaxnreg need the architecture-specific sm_90a."""
        return self.arch == "sm_90a"

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
        if op.name not in VIEWS and not is_direct(task):
            raise ConfigError(
                f"target 'tensorcore' has no schedule template for operator '{op.name}' "
                f"(it has: {', '.join(sorted([*VIEWS, *DIRECT_OPS]))})"
            )
        if getattr(op.shape, "group_count", 1) > 1 and not is_direct(task):
            raise ConfigError(
                f"{op.name} {op.shape_label()}: target 'tensorcore' computes depthwise convolutions (groups = C) on "
                "CUDA cores, but not other grouped convolutions"
            )
        if getattr(op.shape, "channels_last", False) and not is_direct(task):
            raise ConfigError(
                "target 'tensorcore' takes convolutions channels-first and stores their activations channels-last "
                "itself (a packed argument layout, see DEVELOPERS.md): leave out channels_last=1"
            )
        if op.epilogue is not None:
            raise ConfigError("target 'tensorcore' has no fused epilogues yet (bias, relu): use 'dlboost'")
        if self.wgmma_capable and wgmma.applies(op):
            in_dtype, out_dtype = task.spec.in_dtype, task.spec.out_dtype
            if in_dtype not in wgmma.IN_DTYPES or out_dtype not in ("float32", in_dtype):
                raise ConfigError(
                    "target 'tensorcore' (sm_90a, wgmma) computes fp16 or bf16 inputs with fp32 accumulation, output "
                    f"float32 or the input type, not {in_dtype} -> {out_dtype}"
                )
            if op.name in wgmma.OPS:  # (a convolution's gather needs only C % 8 == 0, which applies() asks)
                view = view_of(op)
                wgmma.check_shape(op.name, view.M, view.N, view.K)
            return
        if task.spec.in_dtype != "float16" or task.spec.out_dtype not in OUT_DTYPES:
            raise ConfigError(
                "target 'tensorcore' computes fp16 x fp16 with fp16 or fp32 accumulation (in_dtype float16, out_dtype "
                f"float16 or float32), not {task.spec.in_dtype} -> {task.spec.out_dtype}"
            )

    def tvm_target(self) -> dict:
        return {"kind": "cuda", "arch": self.arch}

    def pass_config(self) -> dict:
        # cp.async is injected only where the schedule marks a pipeline stage asynchronous
        return {"tirx.use_async_copy": True}

    def runtime_env(self) -> dict[str, str]:
        return {"TVM_CUDA_COMPILE_MODE": self.params.compiler}

    def context(self) -> TensorCoreContext:
        return TensorCoreContext(self)

    def context_for(self, task):
        return DirectContext(self) if is_direct(task) else self.context()

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
