"""Entry point of the ``heron-gpu-tensorcore`` distribution."""

from heron_core import hookimpl
from heron_core.registry import PluginSpec
from heron_gpu_tensorcore.target import TensorCoreParams, TensorCoreTarget


@hookimpl
def heron_targets():
    return [
        PluginSpec(
            "target",
            "tensorcore",
            TensorCoreTarget,
            TensorCoreParams,
            "NVIDIA GPUs with Tensor Cores: fp16 operators as WMMA GEMMs (fp16 or fp32 accumulation)",
        )
    ]
