"""The core's own implementations, registered through the ``heron`` entry point like any plugin."""

from heron_core.cost_model import NoCostModel
from heron_core.hookspecs import hookimpl
from heron_core.ops.gemm import Gemm
from heron_core.registry import PluginSpec
from heron_core.runner import LocalRunner, LocalRunnerParams
from heron_core.searcher import ConstrainedRandomParams, ConstrainedRandomSearcher


@hookimpl
def heron_operators():
    return [PluginSpec("operator", Gemm.name, Gemm, Gemm.Shape, "C[M,N] = A[M,K] . B[K,N]; int8: u8 x s8 -> s32")]


@hookimpl
def heron_searchers():
    return [
        PluginSpec(
            "searcher", "crand", ConstrainedRandomSearcher, ConstrainedRandomParams,
            "random valid points of the constraint space, ranked by the cost model when it has one",
        )
    ]


@hookimpl
def heron_cost_models():
    return [PluginSpec("cost_model", "none", NoCostModel, description="no model: pure exploration")]


@hookimpl
def heron_runners():
    return [
        PluginSpec(
            "runner", "local", LocalRunner, LocalRunnerParams,
            "parallel builds in worker processes, isolated timed runs checked against numpy",
        )
    ]
