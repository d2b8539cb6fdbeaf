"""One measuring runner for the kernel tests of this folder: its worker processes (each imports TVM)
start once per target instead of once per test."""

import pytest

from heron_core.runner import LocalRunner, LocalRunnerParams


@pytest.fixture(scope="session")
def runner():
    with LocalRunner(LocalRunnerParams(repeat=1, number=1, min_repeat_ms=0)) as r:
        yield r


@pytest.fixture
def check_points(runner):
    """``check_points(task, points)``: every point builds, runs and computes the numpy reference exactly."""

    def check(task, points) -> None:
        assert points, f"{task.describe()}: no points"
        results = list(runner.run(task, points))
        assert len(results) == len(points)
        assert all(r.ok for r in results), [(task.spec.shape, r.point, r.status, r.error) for r in results if not r.ok]

    return check
