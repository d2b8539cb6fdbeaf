"""Runner ``rpc`` through a TVM RPC tracker and one server on 127.0.0.1 (subprocesses on free ports)."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from heron_core.errors import ConfigError
from heron_cpu_dlboost.cpu import host_cpu
from heron_runner_rpc.runner import RPCRunner, RPCRunnerParams

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"
KEY = "heron-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


@pytest.fixture(scope="module")
def tracker_port():
    port = free_port()
    tracker = start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1), "--silent")
    server_port = free_port()
    server = start(
        "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}", "--key", KEY, "--host", "127.0.0.1",
        "--port", str(server_port), "--port-end", str(server_port + 1), "--silent",
    )  # fmt: skip
    try:
        deadline = time.time() + 90
        while True:  # until the server has registered with the tracker
            try:
                RPCRunner(RPCRunnerParams(key=KEY, tracker_port=port, parallel=1)).close()
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


def heron_tune(db, *runner_params: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "heron_core.cli", "tune", "--target", "dlboost", "--target-param", "num_cores=1"]
    cmd += ["--target-param", f"microkernel={MICROKERNEL}", "--shape", "32,32,32", "--trials", "4", "--batch-size", "2"]
    cmd += ["--runner", "rpc", "--quiet", "--db", str(db)]
    for param in runner_params:
        cmd += ["--runner-param", param]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})


def test_tune_through_tracker_and_server(tracker_port, tmp_path):
    db = tmp_path / "r.db"
    proc = heron_tune(db, f"key={KEY}", f"tracker_port={tracker_port}", "parallel=2", "repeat=2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS / Case [32, 32, 32]" in proc.stdout
    rows = sqlite3.connect(db).execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall()
    assert rows == [("ok", 4)]


def test_unknown_key_is_exit_status_2(tracker_port, tmp_path):
    t0 = time.time()
    proc = heron_tune(tmp_path / "r.db", "key=no-such-board", f"tracker_port={tracker_port}")
    assert proc.returncode == 2
    assert f"no RPC server with key 'no-such-board'" in proc.stderr and KEY in proc.stderr
    assert "Traceback" not in proc.stderr and time.time() - t0 < 60


def test_unreachable_tracker_is_one_clear_error():
    t0 = time.time()
    with pytest.raises(ConfigError, match="cannot reach the RPC tracker"):
        RPCRunner(RPCRunnerParams(key=KEY, tracker_port=free_port(), parallel=1))
    with pytest.raises(ConfigError, match="cannot reach the RPC tracker"):  # nothing answers at all
        RPCRunner(RPCRunnerParams(key=KEY, tracker_host="192.0.2.1", connect_timeout=1, parallel=1))
    assert time.time() - t0 < 10
