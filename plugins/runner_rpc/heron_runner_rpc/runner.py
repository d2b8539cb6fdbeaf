"""Runner ``rpc``: kernels are built here (``local``'s build pool), then each is uploaded to a device
that TVM's RPC tracker lends by key and priority, loaded there, checked against the numpy reference
and timed by ``time_evaluator`` on the remote device (:func:`heron_core.runner.check_and_time`).

Each measurement asks the tracker for a session of its own, from ``local``'s measuring process, and
ends it on every path; a session that outlives ``session_timeout`` is ended by the server.
"""

from __future__ import annotations

import os
import socket
import time

from pydantic import Field, PositiveFloat

from heron_core import runner as core
from heron_core.errors import ConfigError
from heron_core.measure import Status
from heron_core.runner import LocalRunner, LocalRunnerParams


class RPCRunnerParams(LocalRunnerParams):
    key: str = Field(min_length=1)
    """The device key the RPC servers registered with (``rpc_server --key``)."""
    tracker_host: str = "127.0.0.1"
    tracker_port: int = Field(default=9190, ge=1, le=65535)
    priority: int = 1
    """Tracker queue priority: higher is served first."""
    session_timeout: PositiveFloat | None = None
    """Seconds a session (upload, check, timing) may last on the server; default ``run_timeout``."""
    connect_timeout: PositiveFloat = 5.0
    """Seconds to reach the tracker."""


class RPCRunner(LocalRunner):
    params: RPCRunnerParams
    measures_here = False  # the remote device runs the kernels

    def __init__(self, params: RPCRunnerParams):
        check_tracker(params)
        super().__init__(params)

    def _measure_call(self):
        p = self.params
        return measure_remote, session_seconds(p.model_dump()) + 2 * p.connect_timeout


def session_seconds(params: dict) -> float:
    return params["session_timeout"] or params["run_timeout"]


def _tracker(params: dict):
    """A tracker connection, or ConfigError at once (TVM itself retries a refused connection for a minute)."""
    from tvm import rpc

    where = f"{params['tracker_host']}:{params['tracker_port']}"
    try:
        socket.create_connection((params["tracker_host"], params["tracker_port"]), timeout=params["connect_timeout"]).close()
        tracker = rpc.connect_tracker(params["tracker_host"], params["tracker_port"])
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot reach the RPC tracker at {where}: {exc}") from None
    tracker._sock.settimeout(params["connect_timeout"])
    return tracker


def check_tracker(params: RPCRunnerParams) -> None:
    """The tracker answers and has a server registered under ``key``."""
    tracker = _tracker(params.model_dump())
    try:
        summary = tracker.summary()
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"the RPC tracker at {params.tracker_host}:{params.tracker_port} did not answer: {exc}") from None
    finally:
        tracker.close()
    keys = sorted({info["key"].split(":", 1)[-1] for info in summary.get("server_info", [])})
    if params.key not in keys:
        raise ConfigError(
            f"no RPC server with key '{params.key}' on the tracker at {params.tracker_host}:{params.tracker_port} "
            f"(keys there: {', '.join(keys) or 'none'})"
        )


def measure_remote(spec_json: str, path: str, params: dict) -> tuple[Status, list[float], str]:
    """``local``'s measuring process calls this instead of :func:`heron_core.runner.measure_one`."""
    task = core._task(spec_json)
    timeout = session_seconds(params)
    tracker = _tracker(params)
    tracker._sock.settimeout(None)  # the request waits while the tracker's servers are busy
    try:
        session = tracker.request(params["key"], priority=params["priority"], session_timeout=timeout, max_retry=1)
    finally:
        tracker.close()
    t0 = time.perf_counter()
    name = os.path.basename(path)
    try:
        session.upload(path)
        module = session.load_module(name)
        return core.check_and_time(task, module, session.device(task.target.device_type()), core._reference(spec_json), params)
    except Exception as exc:
        if time.perf_counter() - t0 >= 0.95 * timeout:  # the server ended the session
            return Status.RUN_TIMEOUT, [], f"remote session took over {timeout:g} s ({core.error_summary(exc, 300)})"
        raise
    finally:
        module = None
        try:
            session.remove(name)
        except Exception:
            pass  # the session is already gone
        session = None
