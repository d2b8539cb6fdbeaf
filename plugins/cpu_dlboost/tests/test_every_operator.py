"""Property: every sampled point of every operator builds and computes the numpy reference."""

import random

import pytest

from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"

# Small shapes that still exercise every path: prepacked weights, in-kernel packing of an input
# (bmm) and of a constant (scan), data re-laid out with padding, zero insertion (t2d), dilation,
# strides, a lane axis that is not the output's innermost (the convolutions).
SHAPES = {
    "gemm": {"M": 32, "K": 32, "N": 32},
    "dense": {"M": 16, "K": 32, "N": 32},
    "bmm": {"batch": 2, "M": 16, "K": 16, "N": 32},
    "gemv": {"M": 64, "K": 32},
    "scan": {"M": 8, "N": 48, "K": 32},
    "conv1d": {"N": 1, "C": 8, "W": 20, "K": 16, "S": 3, "stride": 1, "pad": 2, "dilation": 2},
    "conv2d": {"N": 2, "C": 8, "H": 9, "W": 9, "K": 32, "R": 3, "S": 3, "stride": 2, "pad": 1},
    "conv3d": {"N": 1, "C": 4, "D": 4, "H": 5, "W": 5, "K": 16, "T": 3, "R": 3, "S": 3, "stride": 1, "pad": 1},
    "dil": {"N": 1, "C": 8, "H": 10, "W": 10, "K": 16, "R": 3, "S": 3, "pad": 2, "dilation": 2},
    "t2d": {"N": 1, "C": 8, "H": 5, "W": 5, "K": 16, "R": 3, "S": 3, "stride": 2, "pad": 1, "output_pad": 1},
}


# The convolutions again on channels-last activations and output: the lane axis is innermost,
# the data needs packing only for its padding.
CHANNELS_LAST = [f"{op}:channels_last" for op in ("conv1d", "conv2d", "conv3d", "t2d")]


@pytest.mark.parametrize("case", sorted(SHAPES) + CHANNELS_LAST)
def test_every_sampled_point_of_every_operator_is_correct(case, check_points):
    op, _, flag = case.partition(":")
    shape = {**SHAPES[op], **({flag: 1} if flag else {})}
    ref = PluginRef(name="dlboost", params={"num_cores": 2, "microkernel": MICROKERNEL})
    task = Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="int8", out_dtype="int32"))
    points = SearchSpace(task).sample(4, random.Random(len(case)))
    assert len(points) == 4
    check_points(task, points)


@pytest.mark.parametrize("op", ["conv3d", "conv2d", "scan"])
def test_skipping_known_zeros_keeps_results_exact(op, check_points):
    """Points that skip the micro-kernel calls reading only padding (convolutions) or zero tiles of
    a constant (scan's mask) compute the same output, whatever the tiling around the test."""
    ref = PluginRef(name="dlboost", params={"num_cores": 2, "microkernel": MICROKERNEL})
    task = Task(TaskSpec(target=ref, op=op, shape=SHAPES[op], in_dtype="int8", out_dtype="int32"))
    space = SearchSpace(task)
    skips = [k for k in space.knobs if k.startswith("skip_")]
    assert skips, "no skippable calls declared"
    points = space.sample(3, random.Random(1))
    points = [{**p, **{k: 1 for k in skips}} for p in points]
    assert all(space.is_valid(p) for p in points)
    check_points(task, points)
