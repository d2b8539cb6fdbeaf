from heron_core.hookspecs import hookimpl
from heron_core.registry import PluginSpec
from heron_runner_ray.runner import RayRunner, RayRunnerParams


@hookimpl
def heron_runners():
    return [
        PluginSpec(
            "runner",
            "ray",
            RayRunner,
            RayRunnerParams,
            "builds spread over a Ray cluster, measurements in one actor per device (nodes with the device resource)",
        )
    ]
