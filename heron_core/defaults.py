"""The core's own implementations, registered through the ``heron`` entry point like any plugin."""

import sys

from heron_core.cost_model import NoCostModel
from heron_core.hookspecs import hookimpl
from heron_core.ops.bmm import Bmm
from heron_core.ops.conv1d import Conv1d
from heron_core.ops.conv2d import Conv2d
from heron_core.ops.conv3d import Conv3d
from heron_core.ops.dense import Dense
from heron_core.ops.dep import Dep
from heron_core.ops.dil import Dil
from heron_core.ops.gemm import Gemm
from heron_core.ops.gemv import Gemv
from heron_core.ops.mean import Mean
from heron_core.ops.scan import Scan
from heron_core.ops.t2d import T2d
from heron_core.ops.var import Var
from heron_core.presets import Presets
from heron_core.registry import PluginSpec
from heron_core.runner import LocalRunner, LocalRunnerParams
from heron_core.searcher import ConstrainedRandomParams, ConstrainedRandomSearcher

OPERATORS = (Gemm, Bmm, Gemv, Dense, Conv1d, Conv2d, Conv3d, Dil, T2d, Scan, Dep, Mean, Var)


@hookimpl
def heron_operators():
    # each operator module's docstring starts with "<name>: <what it computes>"
    return [
        PluginSpec("operator", op.name, op, op.Shape, sys.modules[op.__module__].__doc__.split(": ", 1)[1].split("\n")[0])
        for op in OPERATORS
    ]


@hookimpl
def heron_searchers():
    return [
        PluginSpec(
            "searcher",
            "crand",
            ConstrainedRandomSearcher,
            ConstrainedRandomParams,
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
            "runner",
            "local",
            LocalRunner,
            LocalRunnerParams,
            "parallel builds in worker processes, isolated timed runs checked against numpy",
        )
    ]


@hookimpl
def heron_frontends():
    return [
        PluginSpec("frontend", "presets", Presets, description="the figure-10 networks: resnet50, vgg16, inception-v3, bert-base")
    ]
