"""The ``fold_taps`` knob: a convolution with C % 4 != 0 may fold its kernel taps into the dot's reduction
(an im2col stage); both choices compute the numpy reference exactly, and records from before the knob resume."""

import random

from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost import conv_fold
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"


def conv_task(**shape) -> Task:
    ref = PluginRef(name="dlboost", params={"num_cores": 2, "microkernel": MICROKERNEL})
    return Task(TaskSpec(target=ref, op="conv2d", shape=shape, in_dtype="int8", out_dtype="int32"))


def test_fold_taps_is_a_choice_for_small_channel_counts_and_exact_both_ways(check_points):
    """C=3, 3x3 taps, stride 2, padding 1, K=20 (lanes padded), channels-last: F = 27 -> 7 dots instead of 9."""
    task = conv_task(N=1, C=3, H=9, W=10, K=20, R=3, S=3, stride=2, pad=1, channels_last=1)
    space = SearchSpace(task)
    assert space.knobs[conv_fold.KNOB].values == [0, 1]
    lay = task.context.layout(task, {conv_fold.KNOB: 1})
    assert [(a.name, a.extent * a.inner) for a in lay.axes if not a.spatial] == [(conv_fold.AXIS, 28)]
    rng = random.Random(0)
    points = [space.complete({conv_fold.KNOB: fold}, rng) for fold in (1, 1, 0)]
    assert all(p is not None for p in points)
    assert all(p[f"{conv_fold.AXIS}0"] * p[f"{conv_fold.AXIS}1"] == 7 for p in points[:2]) and points[2]["folded0"] == 1
    old = {k: v for k, v in points[2].items() if not k.startswith("fold")}  # recorded before the knob existed
    assert space.is_valid(space.upgraded(old)) and space.upgraded(old)[conv_fold.KNOB] == 0
    check_points(task, points)


def test_fold_taps_channels_first_and_not_offered_where_it_saves_nothing(check_points):
    task = conv_task(N=2, C=1, H=6, W=5, K=16, R=3, S=2, stride=1, pad=1)
    check_points(task, [SearchSpace(task).complete({conv_fold.KNOB: 1}, random.Random(1))])
    assert conv_fold.KNOB not in SearchSpace(conv_task(N=1, C=8, H=6, W=6, K=16, R=3, S=3, pad=1)).knobs
