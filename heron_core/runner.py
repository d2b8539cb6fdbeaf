"""Runners build and measure candidates. ``local``: parallel builds in worker processes,
then one-at-a-time measurement in a separate process, so a kernel that crashes or hangs
costs one record, never the tuning run."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, ClassVar, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heron_core.limits import MAX_TIMEOUT_S, Repeats, Timeout, Workers, count
from heron_core.measure import MeasureResult, Status
from heron_core.space import Point
from heron_core.task import Task, TaskSpec


class Runner(ABC):
    measures_here: ClassVar[bool] = True  # kernels run on this machine: the CLI checks that its CPU/GPU can run them

    def __init__(self, params: BaseModel):
        self.params = params

    @abstractmethod
    def run(self, task: Task, points: list[Point]) -> Iterator[MeasureResult]:
        """Measure ``points``, yielding each result as soon as it is known."""

    def close(self) -> None:
        """Release workers."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MeasureParams(BaseModel):
    """What every runner takes: timeouts and how ``measure_one``/``check_and_time`` time a kernel."""

    model_config = ConfigDict(extra="forbid")
    build_timeout: Timeout = 60.0
    run_timeout: Timeout = 30.0
    number: Repeats = 3
    repeat: Repeats = 4
    min_repeat_ms: count(int(MAX_TIMEOUT_S * 1000), lo=0) = 20
    check_correctness: bool = True
    cache_flush: bool = False


class LocalRunnerParams(MeasureParams):
    parallel: Workers = Field(default_factory=lambda: len(os.sched_getaffinity(0)))


def error_summary(exc: BaseException, limit: int = 2000) -> str:
    """TVM errors carry pages of IR; keep the lines that say what went wrong."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip() and "^^^" not in ln]
    key = [ln for ln in lines if "Error" in ln or "error" in ln] or lines[-3:]
    return f"{type(exc).__name__}: " + " | ".join(dict.fromkeys(key))[:limit]


# --- worker side (module-level so spawned processes can import them) ---------------------
_TASKS: dict[str, Task] = {}
_REFERENCES: dict[str, tuple[dict, np.ndarray]] = {}


def _init_worker(env: dict[str, str], spec_json: str, measures: bool, here: bool = True) -> None:
    """Start-up work (importing TVM and the plugins, computing the reference) happens here,
    so the build and run timeouts measure the candidate alone."""
    # TVM's FFI imports PyTorch whenever it is installed (~2 s of CPU per process): workers never use it
    if "torch" not in sys.modules:
        sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError here
    os.environ.update(env)
    task = _task(spec_json)
    if measures:
        if here:  # process rights (AMX tile registers) are the measuring machine's business
            task.target.prepare_process()
        _reference(spec_json)


def _task(spec_json: str) -> Task:
    if spec_json not in _TASKS:
        _TASKS[spec_json] = Task(TaskSpec.model_validate_json(spec_json))
    return _TASKS[spec_json]


def _reference(spec_json: str) -> tuple[dict, np.ndarray]:
    """The measuring inputs and the expected output (fixed seed: identical in every run)."""
    if spec_json not in _REFERENCES:
        op = _task(spec_json).op
        inputs = op.random_inputs(seed=0)
        _REFERENCES[spec_json] = (inputs, op.reference(inputs))
    return _REFERENCES[spec_json]


def build_one(spec_json: str, point: Point, path: str) -> float:
    from heron_core import tvm_compat

    t0 = time.perf_counter()
    task = _task(spec_json)
    executable = tvm_compat.build(task.context.apply(task, point), task.target.tvm_target(), task.target.pass_config())
    tvm_compat.export(executable, path)
    return time.perf_counter() - t0


def measure_one(spec_json: str, path: str, params: dict) -> tuple[Status, list[float], str]:
    """Load the kernel built at ``path`` into this process, check it and time it on the target's device."""
    from heron_core import tvm_compat

    task = _task(spec_json)
    return check_and_time(task, tvm_compat.load(path), task.target.device(), _reference(spec_json), params)


def check_and_time(task: Task, module, dev, reference: tuple[dict, np.ndarray], params: dict) -> tuple[Status, list[float], str]:
    """Run a loaded kernel once on ``dev`` (local, or a remote device of a TVM RPC session), compare its
    output with the numpy reference, then time it; ``params`` as :class:`MeasureParams`."""
    from heron_core import tvm_compat

    inputs, expected = reference
    args = tvm_compat.to_device(task.context.kernel_args(task, inputs), dev)
    module["main"](*args)
    if params["check_correctness"]:
        got = args[-1].numpy()
        tol = task.context.tolerance(task)
        if not outputs_match(got, expected, tol):
            bad = np.argwhere(~np.isclose(got, expected, *tol) if got.dtype.kind == "f" else got != expected)
            return Status.WRONG_RESULT, [], f"{len(bad)} of {got.size} outputs differ, first at {tuple(bad[0])}"
    costs = tvm_compat.time_kernel(
        module, dev, args, params["number"], params["repeat"], params["min_repeat_ms"], params["cache_flush"]
    )
    return Status.OK, costs, ""


def outputs_match(got: np.ndarray, expected: np.ndarray, tolerance: tuple[float, float] = (1e-3, 1e-3)) -> bool:
    """Integers exactly; floats within (rtol, atol), as numpy's allclose (bfloat16, which numpy sees as
    an opaque kind, compared in float32)."""
    if got.dtype.kind in "iub":
        return bool(np.array_equal(got, expected))
    return bool(np.allclose(got.astype(np.float32), expected.astype(np.float32), *tolerance))


# --- parent side ---------------------------------------------------------------------------
class LocalRunner(Runner):
    params: LocalRunnerParams

    def __init__(self, params: LocalRunnerParams):
        super().__init__(params)
        self._pools = None
        self._pools_target = ""
        self._dir = tempfile.mkdtemp(prefix="heron-build-")
        self._count = 0

    def _start(self, task: Task):
        from pebble import ProcessPool

        target = task.spec.target.model_dump_json()  # workers are set up for one target (environment, process rights)
        if self._pools is not None and self._pools_target != target:
            self.close(keep_dir=True)
        if self._pools is None:
            ctx = multiprocessing.get_context("spawn")
            init = (task.target.runtime_env(), task.spec.model_dump_json())
            builders = ProcessPool(self.params.parallel, context=ctx, initializer=_init_worker, initargs=(*init, False))
            measurer = ProcessPool(1, context=ctx, initializer=_init_worker, initargs=(*init, True, self.measures_here))
            self._pools, self._pools_target = (builders, measurer), target
        return self._pools

    def run(self, task: Task, points: list[Point]) -> Iterator[MeasureResult]:
        from pebble import ProcessExpired

        builders, measurer = self._start(task)
        spec_json = task.spec.model_dump_json()
        p = self.params
        jobs = []
        for point in points:
            self._count += 1
            path = os.path.join(self._dir, f"k{self._count}.so")
            jobs.append((point, path, builders.schedule(build_one, (spec_json, point, path), timeout=p.build_timeout)))
        built = []
        for point, path, fut in jobs:  # all builds first: timing must not share cores with them
            try:
                built.append((point, path, fut.result()))
            except FutureTimeout:
                yield MeasureResult(point, Status.BUILD_TIMEOUT, error=f"build took over {p.build_timeout:g} s")
            except ProcessExpired as exc:
                yield MeasureResult(point, Status.BUILD_ERROR, error=f"build worker died ({_exit_text(exc.exitcode)})")
            except BrokenProcessPool as exc:  # the pool itself died: start a fresh one next time
                self.close(keep_dir=True)
                yield MeasureResult(point, Status.BUILD_ERROR, error=error_summary(exc))
            except Exception as exc:
                yield MeasureResult(point, Status.BUILD_ERROR, error=error_summary(exc))
        for point, path, build_s in built:
            t0 = time.perf_counter()
            fn, timeout = self._measure_call()
            fut = measurer.schedule(fn, (spec_json, path, p.model_dump()), timeout=timeout)
            try:
                status, costs, error = fut.result()
            except FutureTimeout:
                status, costs, error = Status.RUN_TIMEOUT, [], f"run took over {timeout:g} s"
            except ProcessExpired as exc:
                status, costs, error = Status.CRASH, [], f"kernel crashed the measuring process ({_exit_text(exc.exitcode)})"
            except BrokenProcessPool as exc:
                self.close(keep_dir=True)
                status, costs, error = Status.CRASH, [], error_summary(exc)
            except Exception as exc:
                status, costs, error = Status.RUN_ERROR, [], error_summary(exc)
            finally:
                _remove(path)
            yield MeasureResult(point, status, costs, error, build_s, time.perf_counter() - t0)

    def _measure_call(self) -> tuple[Callable[[str, str, dict], tuple[Status, list[float], str]], float]:
        """What the measuring process calls with (spec_json, path, params), and its deadline in seconds."""
        return measure_one, self.params.run_timeout

    def close(self, keep_dir: bool = False) -> None:
        if self._pools:
            for pool in self._pools:
                pool.stop()
                pool.join()
            self._pools = None
        if not keep_dir:
            shutil.rmtree(self._dir, ignore_errors=True)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"
