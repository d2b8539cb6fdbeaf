"""The task scheduler's choices (Ansor's gradient, round-robin, warm-up) on simulated tasks, and
transfer of points between similar tasks' spaces."""

import random
from types import SimpleNamespace

import pytest

from heron_core.measure import MeasureResult, Status
from heron_core.scheduler import SchedulerParams, TaskState, choose, network_latency, transfer
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec


def fake_state(name: str, op: str, count: int, op_count: float) -> TaskState:
    layer = SimpleNamespace(name=name, op=op, count=count)
    task = SimpleNamespace(op=SimpleNamespace(op_count=lambda: op_count))
    return TaskState(SimpleNamespace(layer=layer, task=task))


def simulate(strategy: str, rounds: int, seed: int = 0) -> list[TaskState]:
    """Three tasks whose best latency falls with the rounds spent on them, each towards its floor
    (a heavy, often-repeated layer and two light ones); a round = 4 noisy measurements."""
    rng = random.Random(seed)
    states = [fake_state("heavy", "conv2d", 8, 4e9), fake_state("light", "conv2d", 1, 1e8), fake_state("fc", "gemm", 1, 1e8)]
    floors = {"heavy": 1e-3, "light": 5e-5, "fc": 5e-5}
    params = SchedulerParams(strategy=strategy)
    for _ in range(rounds):
        i = choose(states, params)
        s = states[i]
        level = floors[s.item.layer.name] * (1 + 4 / (1 + s.rounds))
        s.add_round([MeasureResult({"x": rng.random()}, Status.OK, [level * rng.uniform(1, 1.3)]) for _ in range(4)])
    return states


def test_warm_up_visits_every_task_once_first():
    states = simulate("gradient", 3)
    assert [s.rounds for s in states] == [1, 1, 1]


def test_round_robin_spreads_rounds_evenly():
    assert [s.rounds for s in simulate("round_robin", 30)] == [10, 10, 10]


def test_gradient_spends_on_the_weighted_bottleneck_and_beats_round_robin():
    grad, rr = simulate("gradient", 30), simulate("round_robin", 30)
    assert grad[0].rounds > 20  # the heavy layer x 8 dominates the network latency
    assert network_latency(grad) < network_latency(rr)


def test_failing_task_is_given_up_after_dead_after_rounds():
    states = [fake_state("a", "gemm", 1, 1e6), fake_state("b", "gemm", 1, 1e6)]
    params = SchedulerParams(dead_after=2)
    for _ in range(10):
        i = choose(states, params)
        if i is None:
            break
        ok = i == 0
        states[i].add_round([MeasureResult({}, Status.OK if ok else Status.RUN_ERROR, [1e-4] if ok else [])])
    assert states[1].rounds == 2 and states[0].rounds == 8


def test_all_exhausted_stops():
    s = fake_state("a", "gemm", 1, 1e6)
    s.exhausted = True
    assert choose([s], SchedulerParams()) is None


@pytest.mark.parametrize("target", [{"name": "dlboost", "microkernel": "generic", "num_cores": 2}])
def test_transfer_completes_points_into_the_new_space(target):
    def space(shape):
        spec = TaskSpec(
            target=PluginRef(**{"name": target["name"], "params": {k: v for k, v in target.items() if k != "name"}}),
            op="gemm",
            shape=shape,
            in_dtype="int8",
            out_dtype="int32",
        )
        return SearchSpace(Task(spec))

    small, large = space({"M": 32, "K": 64, "N": 32}), space({"M": 128, "K": 256, "N": 64})
    donors = small.sample(4, random.Random(0))
    moved = transfer(large, donors, random.Random(0))
    assert moved and all(large.is_valid(p) for p in moved)
    shared = [k for k in large.knobs if all(k in d for d in donors)]
    # knobs whose value is valid in both spaces keep it where the solver allows
    assert any(moved[0][k] == donors[0][k] for k in shared)
