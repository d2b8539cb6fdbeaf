from heron_core.hookspecs import hookimpl
from heron_core.registry import PluginSpec
from heron_runner_rpc.runner import RPCRunner, RPCRunnerParams


@hookimpl
def heron_runners():
    return [
        PluginSpec(
            "runner",
            "rpc",
            RPCRunner,
            RPCRunnerParams,
            "builds here, measures on a remote device of a TVM RPC tracker (by key and priority)",
        )
    ]
