"""Runner ``ray``: builds spread over a Ray cluster's CPUs, measurements in one long-lived actor per
device, on the nodes that offer the device resource (or carry the device label), so two timings
never share a device. The driver alone receives the results (as each is known) and writes records.

Build and measurement are :mod:`heron_core.runner`'s own ``build_one`` and ``measure_one``, run in
Ray actors instead of pebble worker processes; as with ``local``, a batch is built first and
measured after, so timings never share cores with builds. A candidate whose node dies is re-queued
(``retries`` times) on another actor, then recorded as failed; what was measured is already recorded.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal

from pydantic import NonNegativeInt, PositiveFloat, PositiveInt

from heron_core import runner as core
from heron_core.errors import ConfigError
from heron_core.measure import MeasureResult, Status
from heron_core.runner import MeasureParams, Runner, error_summary
from heron_core.space import Point
from heron_core.task import Task


class RayRunnerParams(MeasureParams):
    address: str | None = None
    """A running cluster ("HOST:PORT" of its head, or "auto"); None starts a local Ray instance for the run."""
    parallel: PositiveInt | None = None
    """Build actors (one CPU each, spread over the nodes); default: every CPU of the cluster."""
    device_resource: str = "heron_device"
    """Custom resource that marks measuring nodes: one measuring actor per unit a node offers."""
    device_label: str | None = None
    """KEY=VALUE: measure on the nodes with this Ray label instead (one actor per node)."""
    retries: NonNegativeInt = 2
    """Times a candidate whose node died is re-queued before it is recorded as failed."""
    connect_timeout: PositiveFloat = 10.0
    """Seconds to reach ``address``."""
    start_timeout: PositiveFloat = 300.0
    """Seconds an actor may take to be placed and import TVM before it is given up."""


Outcome = Literal["ok", "error", "timeout", "died", "lost"]


class HeronWorker:
    """One Ray actor process: builds kernels (any node) or measures them (on its device's node)."""

    def __init__(self, env: dict[str, str]):
        self.env = env

    def prepare(self, spec_json: str, measures: bool) -> str:
        """Import TVM and the plugins (and compute the reference) before any deadline starts; returns the node id."""
        import ray

        core._init_worker(self.env, spec_json, measures)
        return ray.get_runtime_context().get_node_id()

    def build(self, spec_json: str, point: Point) -> tuple[bytes, float]:
        with tempfile.TemporaryDirectory(prefix="heron-ray-") as tmp:
            path = os.path.join(tmp, "kernel.so")
            build_s = core.build_one(spec_json, point, path)
            with open(path, "rb") as f:
                return f.read(), build_s

    def measure(self, spec_json: str, kernel: bytes, params: dict) -> tuple[Status, list[float], str]:
        with tempfile.TemporaryDirectory(prefix="heron-ray-") as tmp:
            path = os.path.join(tmp, "kernel.so")
            with open(path, "wb") as f:
                f.write(kernel)
            return core.measure_one(spec_json, path, params)


@dataclass
class _Slot:
    """An actor and the job it runs (None: idle, or still preparing when not ``ready``)."""

    make: Callable[[], Any]
    actor: Any = None
    node: str = ""
    ready: bool = False
    prepared: set[str] = field(default_factory=set)  # task specs the actor has loaded
    job: "_Job | None" = None
    t0: float = 0.0


@dataclass
class _Job:
    point: Point
    kernel: bytes = b""
    build_s: float = 0.0
    build_node: str = ""
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


class RayRunner(Runner):
    params: RayRunnerParams

    def __init__(self, params: RayRunnerParams):
        super().__init__(params)
        self._owns_ray = False  # this runner called ray.init (and calls ray.shutdown)
        self._builders: list[_Slot] = []
        self._measurers: dict[tuple[str, int], _Slot] = {}
        self._env: dict[str, str] | None = None
        self._connect()

    # --- cluster --------------------------------------------------------------------------
    def _connect(self) -> None:
        import ray

        p = self.params
        if p.address:
            _check_reachable(p.address, p.connect_timeout)
        if ray.is_initialized():  # this process already joined a cluster (a script, a test)
            return
        quiet = dict(log_to_driver=False, logging_level="warning", configure_logging=True)
        if p.address:
            try:
                ray.init(address=p.address, **quiet)
            except Exception as exc:
                raise ConfigError(f"cannot join the Ray cluster at {p.address}: {error_summary(exc, 300)}") from None
            self._owns_ray = True  # ray.shutdown() then only disconnects this driver
        else:
            labels = dict([p.device_label.split("=", 1)]) if p.device_label else {}
            cpus = p.parallel or len(os.sched_getaffinity(0))
            ray.init(
                address="local", num_cpus=cpus, resources={p.device_resource: 1}, labels=labels, include_dashboard=False, **quiet
            )
            self._owns_ray = True

    def _device_nodes(self) -> list[tuple[str, int]]:
        """(node id, devices) of the live nodes that measure."""
        import ray

        p = self.params
        key, _, value = (p.device_label or "").partition("=")
        found = []
        for node in ray.nodes():
            if not node["Alive"]:
                continue
            if p.device_label:
                count = int(node.get("Labels", {}).get(key) == value)
            else:
                count = int(node["Resources"].get(p.device_resource, 0))
            if count:
                found.append((node["NodeID"], count))
        return found

    def _start(self, task: Task) -> None:
        """Top up the actors: lost build actors replaced, one measuring actor per device of every live device node."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self._env is None:
            self._env = task.target.runtime_env()
        env, p = self._env, self.params
        worker = ray.remote(HeronWorker)
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        self._builders = [s for s in self._builders if s.node in alive or not s.ready]
        want = p.parallel or int(ray.cluster_resources().get("CPU", 1))
        for _ in range(want - len(self._builders)):
            make = lambda: worker.options(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=0).remote(env)  # noqa: E731
            self._builders.append(_Slot(make, make()))
        self._measurers = {k: s for k, s in self._measurers.items() if k[0] in alive}
        devices = self._device_nodes()
        if not devices:
            what = f"label {p.device_label}" if p.device_label else f"resource '{p.device_resource}'"
            raise ConfigError(f"no live Ray node offers the measuring device ({what})")
        for node, count in devices:
            for i in range(count):
                if (node, i) in self._measurers:
                    continue
                where = NodeAffinitySchedulingStrategy(node, soft=False)
                need = {} if p.device_label else {p.device_resource: 1}
                make = lambda where=where, need=need: worker.options(  # noqa: E731
                    num_cpus=0, resources=need, scheduling_strategy=where, max_restarts=0
                ).remote(env)
                self._measurers[(node, i)] = _Slot(make, make(), node=node)

    # --- one batch ------------------------------------------------------------------------
    def run(self, task: Task, points: list[Point]) -> Iterator[MeasureResult]:
        p = self.params
        self._start(task)
        spec_json = task.spec.model_dump_json()
        built: deque[_Job] = deque()
        jobs = deque(_Job(point) for point in points)
        for job, outcome, value, node, _ in self._stage(self._builders, jobs, spec_json, measures=False):
            if outcome == "ok":
                job.kernel, job.build_s = value
                job.build_node, job.attempts = node, 0
                built.append(job)
            elif outcome == "timeout":
                yield MeasureResult(job.point, Status.BUILD_TIMEOUT, error=f"build took over {p.build_timeout:g} s")
            else:
                yield MeasureResult(job.point, Status.BUILD_ERROR, error=value, nodes={"build": node})
        failed = {"error": Status.RUN_ERROR, "timeout": Status.RUN_TIMEOUT, "died": Status.CRASH, "lost": Status.RUN_ERROR}
        for job, outcome, value, node, run_s in self._stage(list(self._measurers.values()), built, spec_json, measures=True):
            nodes = {"build": job.build_node, "measure": node}
            if outcome == "ok":
                status, costs, error = value
                yield MeasureResult(job.point, status, costs, error, job.build_s, run_s, nodes)
            else:
                error = f"run took over {p.run_timeout:g} s" if outcome == "timeout" else value
                yield MeasureResult(job.point, failed[outcome], [], error, job.build_s, run_s, nodes)

    def _stage(
        self, slots: list[_Slot], jobs: deque[_Job], spec_json: str, measures: bool
    ) -> Iterator[tuple[_Job, Outcome, Any, str, float]]:
        """Run ``jobs`` on the slots' actors, one job per actor at a time, yielding
        (job, outcome, value, node id, seconds) as each ends. Actors killed by a timeout or a crash
        are replaced; actors whose node died are dropped and their job re-queued."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        p = self.params
        deadline = p.run_timeout if measures else p.build_timeout
        params = p.model_dump()
        slots = list(slots)
        waiting: dict[Any, _Slot] = {}
        last_error = ""

        def warm(slot: _Slot) -> None:
            slot.ready = spec_json in slot.prepared
            if not slot.ready:
                slot.t0 = time.perf_counter()
                waiting[slot.actor.prepare.remote(spec_json, measures)] = slot

        def replace(slot: _Slot) -> None:
            ray.kill(slot.actor, no_restart=True)
            slot.actor, slot.prepared = slot.make(), set()
            warm(slot)

        for slot in slots:
            warm(slot)
        while slots and (jobs or any(slot.job for slot in slots)):
            for slot in slots:
                if slot.ready and slot.job is None and jobs:
                    slot.job, slot.t0 = jobs.popleft(), time.perf_counter()
                    call = slot.actor.measure.remote(spec_json, slot.job.kernel, params) if measures else None
                    waiting[call or slot.actor.build.remote(spec_json, slot.job.point)] = slot
            ready, _ = ray.wait(list(waiting), num_returns=1, timeout=0.1)
            for ref in ready:
                slot = waiting.pop(ref)
                job, slot.job = slot.job, None
                seconds = time.perf_counter() - slot.t0
                try:
                    value = ray.get(ref)
                except RayActorError as exc:
                    if slot.node and slot.node in _alive_nodes():  # the actor died, not its node: a crash
                        replace(slot)
                        if job:
                            yield job, "died", f"worker process died: {error_summary(exc, 300)}", slot.node, seconds
                        continue
                    slots.remove(slot)
                    last_error = f"node {slot.node[:12] or '?'} lost"
                    if job:
                        job.errors.append(last_error)
                        if job.attempts < p.retries:
                            job.attempts += 1
                            jobs.appendleft(job)
                        else:
                            yield job, "lost", "; ".join(job.errors), slot.node, seconds
                    continue
                except (RayTaskError, GetTimeoutError) as exc:
                    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause else exc
                    if job is None:  # the actor cannot even prepare (e.g. Heron is not installed on its node)
                        slots.remove(slot)
                        ray.kill(slot.actor, no_restart=True)
                        last_error = f"worker on node {slot.node[:12]} cannot start: {error_summary(cause, 300)}"
                    else:
                        yield job, "error", error_summary(cause), slot.node, seconds
                    continue
                if job is None:
                    slot.node, slot.ready = value, True
                    slot.prepared.add(spec_json)
                else:
                    yield job, "ok", value, slot.node, seconds
            now = time.perf_counter()
            for ref, slot in list(waiting.items()):
                if slot.job is not None and now - slot.t0 > deadline:
                    del waiting[ref]
                    job, slot.job = slot.job, None
                    replace(slot)
                    yield job, "timeout", None, slot.node, now - slot.t0
                elif slot.job is None and now - slot.t0 > p.start_timeout:
                    del waiting[ref]
                    slots.remove(slot)
                    ray.kill(slot.actor, no_restart=True)
                    last_error = "a worker did not start (no free resources?)"
        for job in jobs:  # no actor left
            what = "measuring" if measures else "build"
            yield job, "lost", f"no {what} worker left ({last_error})", "", 0.0

    def close(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        for slot in [*self._builders, *self._measurers.values()]:
            try:
                ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
        self._builders, self._measurers = [], {}
        if self._owns_ray:
            ray.shutdown()
            self._owns_ray = False


def _alive_nodes() -> set[str]:
    import ray

    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast on a wrong HOST:PORT (ray.init would retry for a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray:// client addresses: left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address}: {exc}") from None
