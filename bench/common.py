"""What the dlboost benchmarks share: re-timing the best tuned points and describing the machine."""

from __future__ import annotations

import platform
import statistics
import time

from heron_core.records import Record, RecordDB
from heron_core.runner import LocalRunner, LocalRunnerParams
from heron_core.task import Task
from heron_core.tvm_compat import versions
from heron_cpu_dlboost.cpu import host_cpu, llvm_host_cpu


def retime(task: Task, points: list[dict], latency_s: float) -> list[list[float]]:
    """Rebuild points, re-check them and time them again with more repeats (seconds per call):
    15 repeats of at least 10 calls or 0.1 s each, with a run timeout that leaves room for them."""
    number = max(1, min(10, round(0.1 / latency_s)))
    timeout = max(30.0, 3 * 16 * number * latency_s)
    params = LocalRunnerParams(parallel=1, number=number, repeat=15, min_repeat_ms=100, run_timeout=timeout)
    with LocalRunner(params) as runner:
        results = list(runner.run(task, points))
    for result in results:
        if not result.ok:
            raise RuntimeError(f"a best point failed on re-timing: {result.status.value} {result.error}")
    return [result.costs for result in results]


def retime_best(task: Task, db: str, top: int = 3) -> tuple[Record, list[float]]:
    """The ``top`` fastest tuning records of the task, re-timed; the lowest re-timed median wins.
    One lucky tuning measurement (the minimum of many noisy ones) no longer decides alone."""
    records = RecordDB(db)
    try:
        ok = sorted((r for r in records.records(task.workload_key, task.target_key) if r.ok), key=lambda r: r.latency_s)
    finally:
        records.close()
    first = ok[:top]
    costs = retime(task, [r.point for r in first], first[0].latency_s)
    win = min(range(len(first)), key=lambda i: statistics.median(costs[i]))
    return first[win], costs[win]


def machine() -> dict:
    cpu = host_cpu()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu.model,
        "llvm_cpu": llvm_host_cpu(),
        "vnni": cpu.has_vnni,
        "amx": cpu.has_amx,
        "cores_visible": cpu.cores,
        "python": platform.python_version(),
        "versions": versions(),
    }
