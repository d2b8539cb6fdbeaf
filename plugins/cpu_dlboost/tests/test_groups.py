"""Grouped and depthwise convolutions on dlboost (and amx): sampled points exactly equal numpy's.

Depthwise shapes are drawn at random with primes and 1s in every dimension (channels not a
multiple of 16, taps not a multiple of 4: DepthwiseContext pads both inside the kernel). Grouped
shapes keep a multiple of 16 output channels and 4 input channels per group: the general
template's micro-kernel divides those (any-shape padding is another branch's work)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from heron_core.errors import ConfigError
from heron_core.layout import TapBlockedLayout
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost.cpu import host_cpu
from heron_cpu_dlboost.depthwise_context import DIRECT, ROWS, TAPS, DepthwiseContext

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"
PRIMES_AND_ONES = (1, 2, 3, 5, 7, 11, 13, 17)


def task(op: str, shape: dict, target: str = "dlboost", **params) -> Task:
    ref = PluginRef(name=target, params={"num_cores": 2, **params})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="int8", out_dtype="int32"))


def random_depthwise(rng: random.Random) -> tuple[str, dict]:
    c, k = rng.choice(PRIMES_AND_ONES + (19, 24)), rng.choice((3, 1, 5, 2))
    shape = {
        "N": rng.choice((1, 2)),
        "C": c,
        "H": rng.choice(PRIMES_AND_ONES[2:]),
        "W": rng.choice(PRIMES_AND_ONES[2:]),
        "R": k,
        "S": rng.choice((k, 1)),
        "stride": rng.choice((1, 2)),
        "pad": rng.choice((0, k // 2)),
        "channels_last": rng.choice((0, 1)),
    }
    if rng.random() < 0.3:
        return "dep", {**shape, "multiplier": rng.choice((2, 3))}
    return "conv2d", {**shape, "K": c, "groups": c}


def _points(t: Task, n: int, seed: int) -> list[dict]:
    points = SearchSpace(t).sample(n, random.Random(seed))
    assert len(points) == n
    return points


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_points_are_exact_on_random_shapes(seed, check_points):
    op, shape = random_depthwise(random.Random(seed))
    t = task(op, shape, microkernel=MICROKERNEL)
    assert isinstance(t.context, DepthwiseContext) or shape["C"] == 1  # one channel: an ordinary convolution
    check_points(t, _points(t, 2, seed))


@pytest.mark.parametrize(
    "op,shape",
    [
        ("dep", {"N": 1, "C": 24, "H": 9, "W": 11, "stride": 2, "dilation": 2, "pad": 2, "channels_last": 1}),
        ("dep", {"N": 2, "C": 5, "H": 7, "W": 13, "R": 2, "S": 5, "pad": 1, "multiplier": 2}),
        ("conv1d", {"N": 1, "C": 19, "W": 23, "K": 19, "S": 3, "pad": 1, "groups": 19, "channels_last": 1}),
    ],
)
def test_padded_input_kernels_are_exact(op, shape, check_points):
    """ROWS and DIRECT (the kernels on a padded input; ROWS for dilation 1 only) at three staging levels: stride, dilation,
    channels-first, a channel multiplier, kernel rows of 5 taps (2 groups of 4) and conv1d."""
    t = task(op, shape, microkernel=MICROKERNEL)
    space, rng = SearchSpace(t), random.Random(0)
    points = [space.complete({"kernel": k, "pack_level": level}, rng) for k in (ROWS, DIRECT) for level in (0, 2, 3)]
    check_points(t, [p for p in points if p is not None])


def test_records_from_before_the_kernel_knob_resume_on_the_gathered_taps():
    t = task("dep", {"N": 1, "C": 32, "H": 14, "W": 14, "channels_last": 1}, microkernel=MICROKERNEL)
    space = SearchSpace(t)
    old = {k: v for k, v in space.complete({"kernel": TAPS}, random.Random(0)).items() if k != "kernel"}
    assert space.upgraded(old)["kernel"] == TAPS and space.is_valid(space.upgraded(old))


def test_depthwise_conv1d_and_a_single_pixel(check_points):
    t = task("conv1d", {"N": 1, "C": 19, "W": 23, "K": 19, "S": 3, "pad": 1, "groups": 19}, microkernel=MICROKERNEL)
    check_points(t, _points(t, 2, 0))
    t = task("conv2d", {"N": 1, "C": 1, "H": 1, "W": 1, "K": 1, "R": 1, "S": 1, "groups": 1}, microkernel=MICROKERNEL)
    check_points(t, _points(t, 1, 0))


@pytest.mark.parametrize(
    "op,shape",
    [
        ("conv2d", {"N": 2, "C": 12, "H": 7, "W": 5, "K": 48, "R": 3, "S": 3, "stride": 2, "pad": 1, "groups": 3}),
        ("conv1d", {"N": 1, "C": 8, "W": 11, "K": 32, "S": 3, "pad": 1, "groups": 2, "channels_last": 1}),
    ],
)
def test_grouped_points_are_exact(op, shape, check_points):
    t = task(op, shape, microkernel=MICROKERNEL)
    check_points(t, _points(t, 2, 1))


def test_grouped_on_amx_and_depthwise_refused_with_the_reason(check_points):
    shape = {"N": 1, "C": 32, "H": 5, "W": 5, "K": 32, "R": 3, "S": 3, "pad": 1, "groups": 2}
    t = task("conv2d", shape, "amx", microkernel="generic")
    check_points(t, _points(t, 2, 0))
    with pytest.raises(ConfigError, match="does not compute depthwise.*--target dlboost"):
        task("dep", {"N": 1, "C": 32, "H": 7, "W": 7}, "amx")
    with pytest.raises(ConfigError, match="8 per group is not a multiple of 16"):
        task("conv2d", {"N": 1, "C": 16, "H": 5, "W": 5, "K": 16, "R": 1, "S": 1, "groups": 2})


def test_tap_layout_pads_channels_and_taps_with_zeros():
    w = np.arange(24 * 9, dtype=np.int8).reshape(24, 1, 3, 3)
    packed = TapBlockedLayout(lanes=16, reduce=4).pack(w)
    assert packed.shape == (2, 3, 16, 4)
    assert packed[1, 0, 7].tolist() == w[23, 0, 0, :].tolist() + [w[23, 0, 1, 0]]
    assert packed[1, 2, 7].tolist() == [w[23, 0, 2, 2], 0, 0, 0] and not packed[1, :, 8:].any()


def test_groups_keep_workload_keys_and_validate():
    assert "groups" not in task("conv2d", {"N": 1, "C": 16, "H": 5, "W": 5, "K": 16, "R": 1, "S": 1}).workload_key
    with pytest.raises(ConfigError, match="groups .3. must divide both C .16. and K .16."):
        task("conv2d", {"N": 1, "C": 16, "H": 5, "W": 5, "K": 16, "R": 1, "S": 1, "groups": 3})
