"""A TVM RPC tracker and one server on 127.0.0.1 (subprocesses on free ports): for tests, benchmarks
and trying the runner without a board."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from heron_core.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@contextmanager
def loopback_tracker(key: str, wait_s: float = 90.0) -> Iterator[int]:
    """Yields the tracker's port once a server with ``key`` has registered; stops both on exit."""
    from heron_runner_rpc.runner import RPCRunnerParams, check_tracker

    port, server_port = free_port(), free_port()
    tracker = _start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1), "--silent")
    server = _start(
        "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}", "--key", key, "--host", "127.0.0.1",
        "--port", str(server_port), "--port-end", str(server_port + 1), "--silent",
    )  # fmt: skip
    try:
        deadline = time.time() + wait_s
        while True:
            try:
                check_tracker(RPCRunnerParams(key=key, tracker_port=port))
                break
            except ConfigError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        yield port
    finally:
        for proc in (server, tracker):  # their process groups: the server forks one child per session
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
