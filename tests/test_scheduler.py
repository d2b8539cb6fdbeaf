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


def test_warm_up_visits_every_task_once_first_heaviest_first():
    states = [fake_state("light", "gemm", 1, 1e6), fake_state("heavy", "gemm", 12, 1e9), fake_state("mid", "gemm", 4, 1e8)]
    order = []
    for _ in range(3):
        i = choose(states, SchedulerParams())
        order.append(states[i].item.layer.name)
        states[i].add_round([MeasureResult({}, Status.OK, [1e-3])])
    assert order == ["heavy", "mid", "light"]


def test_round_robin_spreads_rounds_evenly():
    assert [s.rounds for s in simulate("round_robin", 30)] == [10, 10, 10]


def test_gradient_spends_on_the_weighted_bottleneck_and_beats_round_robin():
    grad, rr = simulate("gradient", 30), simulate("round_robin", 30)
    assert grad[0].rounds > 20  # the heavy layer x 8 dominates the network latency
    assert network_latency(grad) < network_latency(rr)


def test_gradient_leaves_light_tasks_at_their_warm_up():
    """BERT's shape of problem: three heavy tasks, two light ones (~4% of the latency at their
    floors); every task's best falls towards its floor. With 24 rounds the gradient spends almost
    nothing beyond the warm-up on the light ones and beats round-robin's 24 rounds."""
    floors = {"q": (48, 8e-4), "up": (12, 2.8e-3), "down": (12, 2.2e-3), "bmm1": (12, 1.7e-4), "bmm2": (12, 1.6e-4)}

    def run(strategy: str, rounds: int) -> list[TaskState]:
        rng = random.Random(1)
        states = [fake_state(n, "gemm" if n[0] != "b" else "bmm", w, f * 1e12) for n, (w, f) in floors.items()]
        for _ in range(rounds):
            s = states[choose(states, SchedulerParams(strategy=strategy), rng)]
            level = floors[s.item.layer.name][1] * (1 + 2 * 0.5**s.rounds)
            s.add_round([MeasureResult({"x": rng.random()}, Status.OK, [level * rng.uniform(1, 1.1)]) for _ in range(4)])
        return states

    grad = run("gradient", 24)
    assert sum(s.rounds for s in grad if s.item.layer.op == "bmm") <= 3
    assert network_latency(grad) < network_latency(run("round_robin", 24))


def test_epsilon_greedy_draws_from_the_seed():
    def picks(seed: int) -> list[int]:
        states = [fake_state(n, "gemm", 1, 1e6) for n in "abc"]
        rng, out = random.Random(seed), []
        for _ in range(12):
            i = choose(states, SchedulerParams(epsilon=1.0), rng)
            states[i].add_round([MeasureResult({}, Status.OK, [1e-3])])
            out.append(i)
        return out

    assert picks(3) == picks(3) and len(set(picks(3)[3:])) > 1


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
    moved = transfer(large, donors)
    assert moved and all(large.is_valid(p) for p in moved)
    assert transfer(large, donors[::-1]) == moved[::-1]  # the same completions, whatever the order or run
    shared = [k for k in large.knobs if all(k in d for d in donors)]
    # knobs whose value is valid in both spaces keep it where the solver allows
    assert any(moved[0][k] == donors[0][k] for k in shared)


class FakeSession:
    """A task whose kernel time is ``base`` x the point's ``x`` (x in 1..8); its searcher proposes
    the ``xs`` in turn."""

    def __init__(self, base: float, xs: list[int]):
        self.base, self.xs, self.pending, self.measured = base, xs, [], []
        self.space = SimpleNamespace(knobs={"x": SimpleNamespace(values=list(range(1, 9)))}, complete=lambda fixed, rng=None: dict(fixed))
        self.outcome = SimpleNamespace(seconds={})

    def step(self, n: int) -> list[MeasureResult]:
        points = (self.pending + [{"x": self.xs[(len(self.measured) + k) % len(self.xs)]} for k in range(n)])[:n]
        self.pending = []
        self.measured += points
        return [MeasureResult(p, Status.OK, [self.base * p["x"]]) for p in points]

    def learn(self, batch) -> None: ...

    def finish(self) -> None: ...


def test_scheduler_spends_the_budget_and_seeds_tasks_with_faster_kin_points():
    from heron_core.scheduler import TaskScheduler

    sessions = {"a": FakeSession(1e-3, [8, 7, 1, 6]), "b": FakeSession(2e-3, [8, 7, 6, 5])}
    config = SimpleNamespace(batch_size=2)
    tuner = SimpleNamespace(
        plan=SimpleNamespace(config=config), db=SimpleNamespace(records=lambda wk, tk: []), stop=lambda: False,
        open=lambda spec, total: sessions[spec],
    )

    def item(name: str):
        task = SimpleNamespace(workload_key=name, target_key="t", op=SimpleNamespace(op_count=lambda: 1e6))
        return SimpleNamespace(layer=SimpleNamespace(name=name, op="gemm", count=1), task=task, spec=name)

    # a finds x=1 in its second round; b, one round behind, is offered it in its second
    out = TaskScheduler(tuner, SimpleNamespace(name="net"), [item("a"), item("b")], 8, SchedulerParams(strategy="round_robin")).run()
    assert out.spent == 8 and [s.rounds for s in out.states] == [2, 2]
    assert {"x": 1} in sessions["b"].measured and out.states[1].best == pytest.approx(2e-3)
