import random
from collections import Counter

import pytest

from heron_core.space import SearchSpace, point_key
from heron_core.task import PluginRef, Task, TaskSpec


def gemm_task(M=64, K=64, N=64, **target) -> Task:
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **target})
    return Task(TaskSpec(target=ref, op="gemm", shape={"M": M, "K": K, "N": N}, in_dtype="int8", out_dtype="int32"))


@pytest.fixture(scope="module")
def space():
    return SearchSpace(gemm_task(128, 256, 128))


def test_samples_are_valid_distinct_and_diverse(space):
    points = space.sample(60, random.Random(1))
    assert len({point_key(p) for p in points}) == 60
    assert all(space.is_valid(p) for p in points)
    for knob in ("i3", "j0", "k1", "unroll"):  # each knob takes several values, none dominates
        counts = Counter(p[knob] for p in points)
        assert len(counts) >= 3 and max(counts.values()) <= 45, (knob, counts)


def test_sampled_points_respect_the_rules(space):
    for p in space.sample(30, random.Random(2)):
        assert p["i0"] * p["i1"] * p["i2"] * p["i3"] == 128
        assert p["j0"] * p["j1"] * p["j2"] * p["j3"] * 16 == 128
        assert p["k0"] * p["k1"] * 4 == 256
        assert p["i3"] * p["j3"] + p["j3"] + 1 <= 32  # accumulators + B vectors + broadcast fit in zmm
        assert p["i0"] * p["j0"] >= 2  # at least one chunk per core
        assert p["j3"] * 16 * p["k1"] * 4 + p["i3"] * p["k1"] * 4 <= space.task.target.l1_bytes


def test_complete_keeps_fixed_values_and_solves_the_rest(space):
    rng = random.Random(3)
    p = space.complete({"i3": 4, "k1": [8, 16]}, rng)
    assert p["i3"] == 4 and p["k1"] in (8, 16) and space.is_valid(p)
    assert space.complete({"i0": 128, "i1": 2}, rng) is None  # product would exceed M


def test_invalid_points_are_detected(space):
    p = space.sample(1, random.Random(4))[0]
    assert not space.is_valid({**p, "i3": 7})  # not a divisor
    assert not space.is_valid({**p, "i0": p["i0"] * 2})  # product breaks
    assert not space.is_valid({k: v for k, v in p.items() if k != "unroll"})


def test_sample_excludes_known_points(space):
    first = space.sample(5, random.Random(5))
    again = space.sample(20, random.Random(5), exclude={point_key(p) for p in first})
    assert not {point_key(p) for p in first} & {point_key(p) for p in again}


def test_batches_solve_on_threads_to_the_same_points(space):
    threads = space.threads
    try:
        space.threads = 1
        one = space.sample(40, random.Random(6)), space.complete_many([{"i3": 4}, {"i0": 128, "i1": 2}], random.Random(7))
        space.threads = 2
        two = space.sample(40, random.Random(6)), space.complete_many([{"i3": 4}, {"i0": 128, "i1": 2}], random.Random(7))
    finally:
        space.threads = threads
    assert one == two and one[1][0]["i3"] == 4 and one[1][1] is None
    p = one[0][0]
    assert space.valid_many([p, {**p, "i3": 7}]) == [True, False]


def test_feature_names_are_distinct_when_a_loop_nest_quantity_is_named_like_a_knob(monkeypatch):
    fresh = SearchSpace(gemm_task(128, 256, 128))
    knob = next(iter(fresh.knobs))
    real = fresh.context.features
    monkeypatch.setattr(fresh.context, "features", lambda task, point: {**real(task, point), knob: 1.0})
    names, x = fresh.features(fresh.sample(2, random.Random(0)))
    assert len(set(names)) == len(names) == x.shape[1] and f"nest_{knob}" in names
