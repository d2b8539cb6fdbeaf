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
from heron_core.space import SearchSpace, point_key
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
    seconds: Counter = field(default_factory=Counter)  # "search", "model", "measure": where the time went
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

    def tune(self, spec: TaskSpec) -> TuneOutcome:
        cfg = self.plan.config
        task = Task(spec, self.reg)
        space = SearchSpace(task)
        model = self.reg.get("cost_model", cfg.model.name).factory(self.plan.params["model"], space)
        searcher = self.reg.get("searcher", cfg.search.name).factory(space, self.plan.params["search"], model, cfg.seed)
        history = [
            MeasureResult(r.point, r.status, r.costs, r.error) for r in self.db.records(task.workload_key, task.target_key)
        ]
        if history:
            searcher.tell(history)
            model.fit(history)
        seen = {point_key(r.point) for r in history}
        outcome = TuneOutcome(task, None, len(history), 0, searcher=cfg.search.name)
        best_s = min((r.latency for r in history), default=float("inf"))
        failed = sum(not r.ok for r in history)
        keys = {"task": task.describe(), "workload_key": task.workload_key, "target_key": task.target_key}
        self.events(
            "task",
            {
                **keys,
                "done": len(history),
                "total": cfg.trials,
                "knobs": len(space.knobs),
                "op_count": task.op.op_count(),
                "best_latency_s": best_s,
                "failed": failed,
            },
        )
        record_args = dict(
            workload_key=task.workload_key,
            target_key=task.target_key,
            task=spec.model_dump(),
            target_info=task.target.info(),
            searcher=cfg.search.name,
            run_id=self.run_id,
            versions=self.versions,
        )
        clock = outcome.seconds
        while outcome.total < cfg.trials:
            if self.stop():
                outcome.interrupted = True
                break
            t0 = time.perf_counter()
            points = [p for p in searcher.ask(min(cfg.batch_size, cfg.trials - outcome.total)) if point_key(p) not in seen]
            clock["search"] += time.perf_counter() - t0
            if not points:
                outcome.exhausted = True
                self.events("exhausted", keys)
                break
            batch = []
            t0 = time.perf_counter()
            for result in self.runner.run(task, points):
                seen.add(point_key(result.point))
                rec = self.db.add(result, **record_args)
                batch.append(result)
                outcome.total += 1
                outcome.measured_now += 1
                if not result.ok:
                    outcome.failures[result.status.value] += 1
                    failed += 1
                best_s = min(best_s, result.latency)
                self.events(
                    "result",
                    {
                        **keys,
                        "result": result,
                        "record": rec,
                        "done": outcome.total,
                        "total": cfg.trials,
                        "best_latency_s": best_s,
                        "failed": failed,
                    },
                )
            clock["measure"] += time.perf_counter() - t0
            if self.stop():  # the batch is measured and recorded; the searcher need not learn from it
                outcome.interrupted = outcome.total < cfg.trials
                break
            t0 = time.perf_counter()
            searcher.tell(batch)
            history += batch
            model.fit(history)
            clock["model"] += time.perf_counter() - t0
        best = [r for r in self.db.best(task.workload_key) if r.target_key == task.target_key]
        outcome.best = best[0] if best else None
        self.events("task_done", {**keys, "outcome": outcome})
        return outcome


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
