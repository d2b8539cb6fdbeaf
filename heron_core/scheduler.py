"""The task scheduler: one trial budget spent over a network's tasks, one batch at a time.

The objective is the network's latency f = sum_i w_i * g_i (w_i: the layer's occurrence count,
g_i: its task's best latency so far). After a warm-up of one batch per task (heaviest first: by
w_i * C_i, the only latency estimate before a measurement), each round goes to the task whose
estimated gradient df/dt_i is the most negative (Ansor, Zheng et al. OSDI 2020, section 6; TVM's
``auto_scheduler.TaskScheduler``):

    df/dt_i ~= w_i * (alpha * backward_i + (1 - alpha) * forward_i)
    backward_i = (g_i(t_i) - g_i(t_i - window)) / window        (the last ``window`` rounds)
    forward_i  = min(g_i - g_i / t_i,  beta * C_i / max_{j similar} (C_j / g_j)) - g_i

t_i: rounds spent on task i, C_i: its op count; similar tasks: same operator (the second term of
``forward_i``, an optimistic guess that task i can reach the best GOPS of its kind; ``similar =
False`` drops it). Ties go to the biggest w_i * g_i; with probability ``epsilon`` a round goes to a
random task instead (Ansor's epsilon-greedy; the draws come from ``seed``). ``round_robin`` gives
each task the same number of rounds, in the warm-up's order.

All state derives from the records: a re-run reads each task's records (in order, chunked into
rounds of ``batch_size``) and continues until the network's tasks hold ``trials`` records.
A task new to the records is seeded with the best points of similar tasks already tuned
(transfer): each is completed into the new task's space (``SearchSpace.complete``) and measured
first; and each later round of a task starts with the best point of a similar task that runs at
more GOPS, one not offered to it before (``refresh`` per round), in both strategies.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from heron_core.measure import MeasureResult
from heron_core.network import Network, NetworkTask
from heron_core.space import Point, SearchSpace, point_key
from heron_core.tuner import TaskSession, Tuner

NO_RESULT_S = 1e10  # Ansor's stand-in latency of a task without a correct kernel yet


class SchedulerParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["gradient", "round_robin"] = "gradient"
    alpha: float = Field(0.2, ge=0, le=1)
    beta: float = Field(2.0, gt=0)
    window: PositiveInt = 3  # backward window, in rounds
    similar: bool = True  # the forward guess from similar tasks' GOPS
    transfer: int = Field(4, ge=0)  # points seeded into a new task from similar tasks
    refresh: int = Field(1, ge=0)  # per round, points of faster similar tasks seeded into the chosen one
    dead_after: PositiveInt = 3  # rounds without a correct kernel after which a task gets no more
    epsilon: float = Field(0.05, ge=0, le=1)  # share of gradient rounds given to a random task
    seed: int = 0  # of the epsilon draws and of the completion of transferred points


@dataclass
class TaskState:
    """What the scheduler knows of one tunable task, all derivable from its records."""

    item: NetworkTask
    rounds: int = 0
    trials: int = 0
    history: list[float] = field(default_factory=list)  # best latency after each round (NO_RESULT_S: none yet)
    top: list[tuple[float, Point]] = field(default_factory=list)  # best correct points, fastest first
    exhausted: bool = False

    @property
    def weight(self) -> int:
        return self.item.layer.count

    @property
    def best(self) -> float:
        return self.history[-1] if self.history else NO_RESULT_S

    @property
    def op_count(self) -> float:
        return float(self.item.task.op.op_count())

    @property
    def gops(self) -> float:
        return self.op_count / self.best / 1e9

    def add_round(self, results: list[MeasureResult], keep: int = 8) -> None:
        self.rounds += 1
        self.trials += len(results)
        ok = [(r.latency, r.point) for r in results if r.ok]
        self.top = sorted(self.top + ok, key=lambda t: t[0])[:keep]
        self.history.append(self.top[0][0] if self.top else NO_RESULT_S)


def gradient(i: int, states: list[TaskState], p: SchedulerParams) -> float:
    """Ansor's estimate of d(network latency)/d(rounds of task i); more negative = more promising."""
    s = states[i]
    g = s.best
    backward = 0.0
    if len(s.history) > p.window:
        backward = (s.history[-1] - s.history[-1 - p.window]) / p.window
    guess = g - g / max(s.rounds, 1)
    if p.similar:
        kin = [t for t in states if t.item.layer.op == s.item.layer.op and t.best < NO_RESULT_S]
        if len(kin) > 1:
            guess = min(guess, p.beta * s.op_count / max(t.op_count / t.best for t in kin))
    forward = guess - g
    return s.weight * (p.alpha * backward + (1 - p.alpha) * forward)


def choose(states: list[TaskState], p: SchedulerParams, rng: random.Random | None = None) -> int | None:
    """The task the next round goes to; None when no task can take one. ``rng`` draws the
    epsilon-greedy rounds (none without it)."""
    live = [i for i, s in enumerate(states) if not s.exhausted and not _dead(s, p)]
    if not live:
        return None
    order = warm_up_order(states)
    fresh = [i for i in order if i in live and states[i].rounds == 0]
    if fresh:  # warm-up: every task once, heaviest first
        return fresh[0]
    if p.strategy == "round_robin":
        return min(live, key=lambda i: (states[i].rounds, order.index(i)))
    if rng is not None and rng.random() < p.epsilon:
        return rng.choice(live)
    grads = {i: gradient(i, states, p) for i in live}
    return min(live, key=lambda i: (grads[i], -states[i].weight * states[i].best))


def warm_up_order(states: list[TaskState]) -> list[int]:
    """Task indices by w_i * C_i, biggest first (stable for equals)."""
    return sorted(range(len(states)), key=lambda i: -states[i].weight * states[i].op_count)


def _dead(s: TaskState, p: SchedulerParams) -> bool:
    return s.rounds >= p.dead_after and s.best >= NO_RESULT_S


def network_latency(states: list[TaskState]) -> float | None:
    """sum_i w_i * g_i over the tasks with a correct kernel; None before the first."""
    known = [s.weight * s.best for s in states if s.best < NO_RESULT_S]
    return sum(known) if known else None


def transfer(space: SearchSpace, points: list[Point], seed: int = 0) -> list[Point]:
    """Other tasks' points made valid in ``space``: each knob the space has, with a value in its
    domain, is fixed and the rest completed; if that has no solution, the later half of the fixed
    knobs is freed, and so on. Distinct results, in the order of ``points``. The completion of a
    point draws from ``seed`` and the point alone, so it is the same whichever strategy, order or
    run asks for it."""
    out, seen = [], set()
    for point in points:
        rng = random.Random(f"{seed}/{point_key(point)}")
        fixed = [(k, v) for k, v in point.items() if k in space.knobs and v in space.knobs[k].values]
        done = None
        while done is None:
            done = space.complete(dict(fixed), rng)
            if not fixed:
                break
            fixed = fixed[: len(fixed) // 2]
        if done is not None and point_key(done) not in seen:
            seen.add(point_key(done))
            out.append(done)
    return out


@dataclass
class ScheduleOutcome:
    states: list[TaskState]
    spent: int  # trials recorded for the network's tasks, earlier runs included
    measured_now: int
    interrupted: bool = False
    seconds: Counter = field(default_factory=Counter)  # search, model, measure, build, run, schedule

    @property
    def latency_s(self) -> float | None:
        return network_latency(self.states)


class TaskScheduler:
    """Spends ``trials`` (the network's total, across resumed runs) over ``items`` with ``tuner``
    (its config gives the batch size per round, the searcher, the model and the runner)."""

    def __init__(
        self,
        tuner: Tuner,
        network: Network,
        items: list[NetworkTask],
        trials: int,
        params: SchedulerParams = SchedulerParams(),
        events: Callable[[str, dict], None] = lambda kind, data: None,
    ):
        self.tuner, self.network, self.trials, self.params, self.events = tuner, network, trials, params, events
        self.batch = tuner.plan.config.batch_size
        self.states = [TaskState(item) for item in items if item.task is not None]
        self.sessions: dict[int, TaskSession] = {}
        self.rng = random.Random(params.seed)
        self.donated: dict[int, set] = {}  # point keys of other tasks' points offered to task i
        for state in self.states:  # resume: rebuild each task's state from its records
            task = state.item.task
            records = tuner.db.records(task.workload_key, task.target_key)
            for k in range(0, len(records), self.batch):
                chunk = records[k : k + self.batch]
                state.add_round([MeasureResult(r.point, r.status, r.costs, r.error) for r in chunk])

    @property
    def spent(self) -> int:
        return sum(s.trials for s in self.states)

    def _session(self, i: int) -> TaskSession:
        if i not in self.sessions:
            state = self.states[i]
            session = self.sessions[i] = self.tuner.open(state.item.spec, total=self.trials)
            if state.trials == 0 and self.params.transfer:
                points = [p for t in self._kin(state) for _, p in t.top][: self.params.transfer]
                session.pending = transfer(session.space, points, self.params.seed)
                self.donated[i] = {point_key(p) for p in points}
        return self.sessions[i]

    def _kin(self, state: TaskState, faster_than: float = 0.0) -> list[TaskState]:
        """The other tasks of ``state``'s operator with a kernel above ``faster_than`` GOPS, fastest first."""
        kin = [
            t
            for t in self.states
            if t is not state and t.item.layer.op == state.item.layer.op and t.best < NO_RESULT_S and t.gops > faster_than
        ]
        return sorted(kin, key=lambda t: -t.gops)

    def _refresh(self, i: int, session: TaskSession) -> None:
        """Seed the next batch of task i with the best points, not offered to it before, of the
        tasks of its operator that run at more GOPS than it does."""
        state, given = self.states[i], self.donated.setdefault(i, set())
        fresh = [p for t in self._kin(state, state.gops) for _, p in t.top[:1] if point_key(p) not in given]
        fresh = fresh[: self.params.refresh]
        given.update(point_key(p) for p in fresh)
        session.pending = transfer(session.space, fresh, self.params.seed) + session.pending

    def run(self) -> ScheduleOutcome:
        outcome = ScheduleOutcome(self.states, self.spent, 0)
        self.events("network_start", self._progress())
        while self.spent < self.trials:
            if self.tuner.stop():
                outcome.interrupted = True
                break
            t0 = time.perf_counter()
            i = choose(self.states, self.params, self.rng)
            outcome.seconds["schedule"] += time.perf_counter() - t0
            if i is None:
                break
            session = self._session(i)
            if self.params.transfer and self.params.refresh:
                self._refresh(i, session)
            batch = session.step(min(self.batch, self.trials - self.spent))
            if not batch:
                self.states[i].exhausted = True
                continue
            self.states[i].add_round(batch)
            outcome.measured_now += len(batch)
            self.events("network_round", {**self._progress(), "task_index": i, "layer": self.states[i].item.layer.name})
            if self.tuner.stop():
                outcome.interrupted = self.spent < self.trials
                break
            session.learn(batch)
        for session in self.sessions.values():
            session.finish()
            outcome.seconds.update(session.outcome.seconds)
        outcome.spent = self.spent
        self.events("network_done", {**self._progress(), "outcome": outcome})
        return outcome

    def _progress(self) -> dict:
        return {
            "network": self.network.name,
            "spent": self.spent,
            "total": self.trials,
            "tasks": len(self.states),
            "tasks_tuned": sum(s.best < NO_RESULT_S for s in self.states),
            "latency_s": network_latency(self.states),
        }
