"""The tuning loop: searcher asks, runner measures, records store, model learns."""

from __future__ import annotations

import time
import timeit
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from heron_core.config import Plan, build_config
from heron_core.config import plan as plan_config
from heron_core.measure import MeasureResult
from heron_core.records import Record, RecordDB
from heron_core.registry import Registry, registry
from heron_core.runner import Runner
from heron_core.space import Point, SearchSpace, point_key
from heron_core.task import Task, TaskSpec
from heron_core.tvm_compat import versions

Events = Callable[[str, dict], None]
"""Called with (kind, data) as tuning goes: "task" (a task starts), "result" (each measurement),
"exhausted" (the searcher has no new point), "task_done" (the task ends; data["outcome"])."""


@dataclass
class TuneOutcome:
    task: Task
    best: Record | None
    total: int  # records of this workload on this target, this run's included
    measured_now: int
    failures: Counter = field(default_factory=Counter)
    seconds: Counter = field(default_factory=Counter)  # "search", "model", "measure" (wall), "build", "run" (workers)
    searcher: str = ""
    exhausted: bool = False  # the searcher had no new point to offer before the budget was spent
    interrupted: bool = False  # stopped (``stop``) before the budget was spent


class Tuner:
    """``events`` reports progress; ``stop`` is polled between batches: once it returns True the
    current task ends after the batch being measured (everything measured is recorded)."""

    def __init__(
        self,
        plan: Plan,
        reg: Registry,
        db: RecordDB,
        events: Events = lambda kind, data: None,
        stop: Callable[[], bool] = lambda: False,
    ):
        self.plan, self.reg, self.db, self.events, self.stop = plan, reg, db, events, stop
        self.versions = versions()
        cfg = plan.config
        self.run_id = db.start_run(cfg.model_dump(mode="json"), self.versions)
        self.runner: Runner = reg.get("runner", cfg.runner.name).factory(plan.params["runner"])

    def close(self) -> None:
        self.runner.close()

    def open(self, spec: TaskSpec, total: int | None = None) -> TaskSession:
        """Start (or resume, from its records) tuning one task; ``total`` is the budget shown in
        progress events (default: the config's trials)."""
        return TaskSession(self, spec, self.plan.config.trials if total is None else total)

    def tune(self, spec: TaskSpec) -> TuneOutcome:
        """Tune one task until its workload's records reach the config's trials (or ``stop``)."""
        cfg = self.plan.config
        session = self.open(spec)
        outcome = session.outcome
        while outcome.total < cfg.trials:
            if self.stop():
                outcome.interrupted = True
                break
            batch = session.step(min(cfg.batch_size, cfg.trials - outcome.total))
            if not batch:
                break
            if self.stop():  # the batch is measured and recorded; the searcher need not learn from it
                outcome.interrupted = outcome.total < cfg.trials
                break
            session.learn(batch)
        return session.finish()


class TaskSession:
    """One task being tuned: its space, searcher and cost model, fed with the task's records;
    ``step`` measures and records one batch, ``learn`` tells the searcher and model about it.
    The task scheduler drives several sessions, one batch at a time; points put in ``pending``
    (transferred from similar tasks) are measured before the searcher's."""

    def __init__(self, tuner: Tuner, spec: TaskSpec, total: int):
        cfg, reg = tuner.plan.config, tuner.reg
        self.tuner, self.total = tuner, total
        self.task = task = Task(spec, reg)
        self.space = SearchSpace(task)
        self.model = reg.get("cost_model", cfg.model.name).factory(tuner.plan.params["model"], self.space)
        self.searcher = reg.get("searcher", cfg.search.name).factory(
            self.space, tuner.plan.params["search"], self.model, cfg.seed
        )
        self.history = [
            MeasureResult(self.space.upgraded(r.point), r.status, r.costs, r.error)
            for r in tuner.db.records(task.workload_key, task.target_key)
        ]
        if self.history:
            self.searcher.tell(self.history)
            self.model.fit(self.history)
        self.seen = {point_key(r.point) for r in self.history}
        self.pending: list[Point] = []
        self.outcome = TuneOutcome(task, None, len(self.history), 0, searcher=cfg.search.name)
        self.best_s = min((r.latency for r in self.history), default=float("inf"))
        self.failed = sum(not r.ok for r in self.history)
        self.keys = {"task": task.describe(), "workload_key": task.workload_key, "target_key": task.target_key}
        tuner.events(
            "task",
            {
                **self.keys,
                "done": len(self.history),
                "total": total,
                "knobs": len(self.space.knobs),
                "op_count": task.op.op_count(),
                "best_latency_s": self.best_s,
                "failed": self.failed,
            },
        )
        self.record_args = dict(
            workload_key=task.workload_key,
            target_key=task.target_key,
            task=spec.model_dump(),
            target_info=task.target.info(),
            searcher=cfg.search.name,
            run_id=tuner.run_id,
            versions=tuner.versions,
        )

    def step(self, n: int) -> list[MeasureResult]:
        """Measure and record up to ``n`` new points (seeds first, then the searcher's); an empty
        list when the searcher has none left (``outcome.exhausted``)."""
        outcome, clock, tuner = self.outcome, self.outcome.seconds, self.tuner
        t0 = time.perf_counter()
        points = [p for p in self.pending[:n] if point_key(p) not in self.seen]
        self.pending = self.pending[n:]
        if len(points) < n:
            points += [p for p in self.searcher.ask(n - len(points)) if point_key(p) not in self.seen]
        clock["search"] += time.perf_counter() - t0
        if not points:
            outcome.exhausted = True
            tuner.events("exhausted", self.keys)
            return []
        batch = []
        t0 = time.perf_counter()
        for result in tuner.runner.run(self.task, points):
            self.seen.add(point_key(result.point))
            rec = tuner.db.add(result, **self.record_args)
            batch.append(result)
            outcome.total += 1
            outcome.measured_now += 1
            clock["build"] += result.build_s or 0.0
            clock["run"] += result.run_s or 0.0
            if not result.ok:
                outcome.failures[result.status.value] += 1
                self.failed += 1
            self.best_s = min(self.best_s, result.latency)
            tuner.events(
                "result",
                {
                    **self.keys,
                    "result": result,
                    "record": rec,
                    "done": outcome.total,
                    "total": self.total,
                    "best_latency_s": self.best_s,
                    "failed": self.failed,
                },
            )
        clock["measure"] += time.perf_counter() - t0
        return batch

    def learn(self, batch: list[MeasureResult]) -> None:
        t0 = time.perf_counter()
        self.searcher.tell(batch)
        self.history += batch
        self.model.fit(self.history)
        self.outcome.seconds["model"] += time.perf_counter() - t0

    def finish(self) -> TuneOutcome:
        task = self.task
        best = [r for r in self.tuner.db.best(task.workload_key) if r.target_key == task.target_key]
        self.outcome.best = best[0] if best else None
        self.tuner.events("task_done", {**self.keys, "outcome": self.outcome})
        return self.outcome


def tune_single(config: dict) -> tuple[TuneOutcome, float]:
    """Tune the one case of ``config`` (a TuneConfig as a dict, naming its ``db``); returns the outcome and the
    wall seconds. For scripts and benchmarks; the CLI does the same with progress and checks."""
    plan = plan_config(build_config(config), registry())
    db = RecordDB(plan.config.db)
    tuner = Tuner(plan, registry(), db)
    t0 = time.time()
    try:
        outcome = tuner.tune(plan.tasks[0])
    finally:
        tuner.close()
        db.close()
    return outcome, time.time() - t0


def numpy_seconds(task: Task, repeat: int = 5) -> float:
    """Median seconds of the operator's numpy baseline on the tuning inputs."""
    fn = task.op.numpy_baseline(task.op.random_inputs(seed=0))
    number = max(1, int(0.05 / max(timeit.timeit(fn, number=1), 1e-7)))
    times = sorted(t / number for t in timeit.repeat(fn, number=number, repeat=repeat))
    return times[len(times) // 2]
