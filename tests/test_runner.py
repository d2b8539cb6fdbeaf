import random

import numpy as np
import pytest
from conftest import HAS_VNNI, MICROKERNEL
from test_space import gemm_task

from heron_core import runner as runner_mod
from heron_core.measure import Status
from heron_core.runner import LocalRunner, LocalRunnerParams
from heron_core.space import SearchSpace


@pytest.fixture(scope="module")
def task():
    return gemm_task(64, 64, 64, microkernel=MICROKERNEL)


def test_good_and_broken_points_are_classified(task):
    good = SearchSpace(task).sample(2, random.Random(0))
    broken = {**good[0], "i0": 3}  # not a tiling of M=64: the schedule cannot be built
    with LocalRunner(LocalRunnerParams(parallel=2, repeat=2)) as r:
        results = list(r.run(task, [good[0], broken, good[1]]))
    by_status = {res.status for res in results}
    assert by_status == {Status.OK, Status.BUILD_ERROR}
    err = next(res for res in results if res.status is Status.BUILD_ERROR)
    assert err.point == broken and err.error
    ok = [res for res in results if res.ok]
    assert len(ok) == 2 and all(len(res.costs) == 2 and res.latency > 0 for res in ok)


def test_timeouts_are_classified_not_fatal(task):
    points = SearchSpace(task).sample(4, random.Random(1))
    with LocalRunner(LocalRunnerParams(parallel=1, build_timeout=0.001)) as r:
        statuses = [res.status for res in r.run(task, points)]
    # pebble checks deadlines every 0.1 s, so a very quick build may still finish in time
    assert Status.BUILD_TIMEOUT in statuses and set(statuses) <= {Status.BUILD_TIMEOUT, Status.OK}
    with LocalRunner(LocalRunnerParams(parallel=1, min_repeat_ms=1000, run_timeout=0.5)) as r:
        assert [res.status for res in r.run(task, points[:1])] == [Status.RUN_TIMEOUT]


def test_wrong_output_is_caught(task, tmp_path):
    point = SearchSpace(task).sample(1, random.Random(2))[0]
    spec = task.spec.model_dump_json()
    path = str(tmp_path / "k.so")
    runner_mod.build_one(spec, point, path)
    params = LocalRunnerParams(repeat=1).model_dump()
    assert runner_mod.measure_one(spec, path, params)[0] is Status.OK
    inputs, expected = runner_mod._REFERENCES[spec]
    runner_mod._REFERENCES[spec] = (inputs, expected + np.int32(1))  # as if the kernel were off by one
    status, costs, error = runner_mod.measure_one(spec, path, params)
    assert status is Status.WRONG_RESULT and "differ" in error and not costs


@pytest.mark.skipif(HAS_VNNI, reason="needs a CPU without VNNI, where vpdpbusd kernels fault")
def test_kernel_crash_is_recorded_as_crash():
    task = gemm_task(64, 64, 64, microkernel="vnni", mcpu="sapphirerapids")
    point = SearchSpace(task).sample(1, random.Random(3))[0]
    with LocalRunner(LocalRunnerParams(parallel=1)) as r:
        (res,) = r.run(task, [point])
    assert res.status is Status.CRASH and "SIGILL" in res.error


def test_bfloat16_outputs_are_compared_within_the_tolerance():
    """numpy sees ml_dtypes' bfloat16 as an opaque kind ('V'): compared as floats, not bit for bit."""
    import ml_dtypes

    outputs_match = runner_mod.outputs_match
    expected = np.linspace(-4, 4, 64).astype(ml_dtypes.bfloat16)
    nudged = (expected.astype(np.float32) * 1.004).astype(ml_dtypes.bfloat16)
    assert outputs_match(nudged, expected, (2e-2, 1e-3))
    assert not outputs_match(-nudged, expected, (2e-2, 1e-3))
    assert not outputs_match(np.arange(4), np.arange(4) + 1)
