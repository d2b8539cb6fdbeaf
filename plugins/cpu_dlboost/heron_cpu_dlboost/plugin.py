"""Entry point of the ``heron-cpu-dlboost`` distribution."""

from heron_core import hookimpl
from heron_core.registry import PluginSpec
from heron_cpu_dlboost.amx_target import AMXParams, AMXTarget
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
        ),
        PluginSpec(
            "target",
            "amx",
            AMXTarget,
            AMXParams,
            "x86 CPUs with Intel AMX: int8 (u8 x s8 -> s32, tdpbusd) and bf16 (-> f32, tdpbf16ps) operators on tile registers",
        ),
    ]
