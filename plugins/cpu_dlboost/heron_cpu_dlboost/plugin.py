"""Entry point of the ``heron-cpu-dlboost`` distribution."""

from heron_core import hookimpl
from heron_core.registry import PluginSpec
from heron_cpu_dlboost.target import DLBoostParams, DLBoostTarget


@hookimpl
def heron_targets():
    return [
        PluginSpec(
            "target",
            "dlboost",
            DLBoostTarget,
            DLBoostParams,
            "x86 CPUs with AVX-512 VNNI: int8 (u8 x s8 -> s32) operators on the vpdpbusd micro-kernel",
        )
    ]
