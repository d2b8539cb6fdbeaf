"""Runner ``rpc`` through a TVM RPC tracker and one server on 127.0.0.1 (subprocesses on free ports)."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from heron_runner_rpc.loopback import free_port, loopback_tracker
from heron_runner_rpc.runner import RPCRunner, RPCRunnerParams

from heron_core.errors import ConfigError
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"
KEY = "heron-test"


@pytest.fixture(scope="module")
def tracker_port():
    with loopback_tracker(KEY) as port:
        yield port


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
    assert "no RPC server with key 'no-such-board'" in proc.stderr and KEY in proc.stderr
    assert "Traceback" not in proc.stderr and time.time() - t0 < 60


def test_unreachable_tracker_is_one_clear_error():
    t0 = time.time()
    with pytest.raises(ConfigError, match="cannot reach the RPC tracker"):
        RPCRunner(RPCRunnerParams(key=KEY, tracker_port=free_port(), parallel=1))
    with pytest.raises(ConfigError, match="cannot reach the RPC tracker"):  # nothing answers at all
        RPCRunner(RPCRunnerParams(key=KEY, tracker_host="192.0.2.1", connect_timeout=1, parallel=1))
    assert time.time() - t0 < 10
