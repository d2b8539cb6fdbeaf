"""What the dlboost benchmarks share: re-timing a tuned point and describing the machine."""

from __future__ import annotations

import platform
import time

from heron_core.runner import LocalRunner, LocalRunnerParams
from heron_core.task import Task
from heron_core.tvm_compat import versions
from heron_cpu_dlboost.cpu import host_cpu, llvm_host_cpu


def retime(task: Task, point: dict, latency_s: float) -> list[float]:
    """Rebuild the best point, re-check it and time it again with more repeats (seconds per call):
    15 repeats of at least 10 calls or 0.1 s each, with a run timeout that leaves room for them."""
    number = max(1, min(10, round(0.1 / latency_s)))
    timeout = max(30.0, 3 * 16 * number * latency_s)
    params = LocalRunnerParams(parallel=1, number=number, repeat=15, min_repeat_ms=100, run_timeout=timeout)
    with LocalRunner(params) as runner:
        (result,) = runner.run(task, [point])
    if not result.ok:
        raise RuntimeError(f"best point failed on re-timing: {result.status.value} {result.error}")
    return result.costs


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
