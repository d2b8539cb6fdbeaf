"""The ``fold_taps`` knob: a convolution with C % 4 != 0 may fold kernel taps into the dot's reduction (the last
tap in place, or all of them through an im2col stage); every choice computes the numpy reference exactly, and
records from before the knob resume."""

import random

from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost import conv_fold
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"


def conv_task(**shape) -> Task:
    ref = PluginRef(name="dlboost", params={"num_cores": 2, "microkernel": MICROKERNEL})
    return Task(TaskSpec(target=ref, op="conv2d", shape=shape, in_dtype="int8", out_dtype="int32"))


def test_fold_taps_is_a_choice_for_small_channel_counts_and_exact_every_way(check_points):
    """C=3, 3x5 taps, stride 2, padding 2, K=20 (lanes padded), channels-last: 15 dots per pixel unfolded; 3 x 4
    with (kw, c) = 15 -> 16 read in place; 12 with all 45 folded."""
    task = conv_task(N=1, C=3, H=9, W=10, K=20, R=3, S=5, stride=2, pad=2, channels_last=1)
    space = SearchSpace(task)
    assert space.knobs[conv_fold.KNOB].values == [conv_fold.NONE, conv_fold.ROWS, conv_fold.IM2COL]
    reductions = {
        mode: [(a.name, a.extent * a.inner) for a in task.context.layout(task, {conv_fold.KNOB: mode}).axes if not a.spatial]
        for mode in (conv_fold.ROWS, conv_fold.IM2COL)
    }
    assert reductions == {conv_fold.ROWS: [("row_c", 16), ("kh", 3)], conv_fold.IM2COL: [("taps_c", 48)]}
    rng = random.Random(0)
    fixed = [
        {conv_fold.KNOB: 2, conv_fold.GATHER_KNOB: 0},
        {conv_fold.KNOB: 2, conv_fold.GATHER_KNOB: 1},
        {conv_fold.KNOB: 1},
        {conv_fold.KNOB: 0},
    ]
    points = [space.complete(partial, rng) for partial in fixed]
    assert all(p is not None for p in points)
    assert points[0]["taps_c0"] * points[0]["taps_c1"] == 12 and points[0]["kh0"] == points[0]["c0"] == 1
    assert points[2]["row_c0"] * points[2]["row_c1"] == 4 and points[2]["kh0"] * points[2]["kh1"] == 3
    old = {k: v for k, v in points[3].items() if not k.startswith(("fold", "taps_c", "row_c"))}  # recorded before the knob
    assert space.is_valid(space.upgraded(old)) and space.upgraded(old)[conv_fold.KNOB] == 0
    check_points(task, points)


def test_fold_taps_channels_first_with_an_epilogue_and_not_offered_where_it_saves_nothing(check_points):
    task = conv_task(N=2, C=1, H=6, W=5, K=16, R=3, S=2, stride=1, pad=1, bias=1, relu=1)
    space = SearchSpace(task)
    assert space.knobs[conv_fold.KNOB].values == [conv_fold.NONE, conv_fold.IM2COL]  # in place: channels-last only
    check_points(task, [space.complete({conv_fold.KNOB: conv_fold.IM2COL}, random.Random(1))])
    assert conv_fold.KNOB not in SearchSpace(conv_task(N=1, C=8, H=6, W=6, K=16, R=3, S=3, pad=1)).knobs
