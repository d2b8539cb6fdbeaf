import json
import os
import random
import signal
import sqlite3
import threading
import time

from conftest import MICROKERNEL, heron, heron_until
from conftest import count_records as count

from heron_core.config import build_config, plan
from heron_core.records import RecordDB
from heron_core.registry import registry
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_core.tuner import Tuner

TARGET = ["--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}"]


def test_json_events_are_the_only_stdout(tmp_path):
    args = "--shape M=16,K=32,N=16 --trials 4 --batch-size 2 --json".split()
    proc = heron("tune", *TARGET, *args, db=tmp_path / "r.db", check=True)
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # every line is JSON
    kinds = [e["event"] for e in events]
    assert kinds == ["task_start", "result", "result", "result", "result", "task_end", "run_end"]
    start, *results, end, run = events
    assert start["done"] == 0 and start["total"] == 4 and start["op_count"] == 2 * 16 * 32 * 16
    assert [r["done"] for r in results] == [1, 2, 3, 4] and all(r["total"] == 4 for r in results)
    bests = [r["best_latency_s"] for r in results if r["best_latency_s"] is not None]
    assert bests == sorted(bests, reverse=True) and end["best_latency_s"] == bests[-1]
    assert end["status"] == "pass" and end["gops"] > 0 and end["trials"] == 4
    assert run == {"event": "run_end", "status": "pass", "exit_code": 0, "tasks": 1, "passed": 1, "db": str(tmp_path / "r.db")}
    assert "PASS" not in proc.stderr


def test_stop_flag_ends_the_task_before_the_next_batch(tmp_path):
    cfg = build_config(
        {
            "target": {"name": "dlboost", "microkernel": MICROKERNEL},
            "cases": [{"op": "gemm", "shape": {"M": 16, "K": 32, "N": 16}}],
            "trials": 4,
            "db": str(tmp_path / "r.db"),
        }
    )
    events = []
    db = RecordDB(tmp_path / "r.db")
    tuner = Tuner(plan(cfg, registry()), registry(), db, lambda kind, data: events.append(kind), stop=lambda: True)
    try:
        outcome = tuner.tune(tuner.plan.tasks[0])
    finally:
        tuner.close()
    assert outcome.interrupted and outcome.measured_now == 0 and events == ["task", "task_done"]


def test_cp_sat_leaves_sigint_to_python():
    """OR-Tools would otherwise catch SIGINT during a solve and leave it at SIG_DFL afterwards."""
    got = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: got.set())
    try:
        spec = TaskSpec(
            target=PluginRef(name="dlboost", params={"microkernel": "generic"}),
            op="gemm",
            shape={"M": 32, "K": 64, "N": 32},
            in_dtype="int8",
            out_dtype="int32",
        )
        space = SearchSpace(Task(spec))
        assert space.sample(2, random.Random(0))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert got.is_set()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_after_the_batch_and_the_same_command_resumes(tmp_path):
    db = tmp_path / "r.db"
    args = ["tune", *TARGET, "--shape", "M=32,K=64,N=32", "--trials", "40", "--batch-size", "4", "--quiet", "--db", str(db)]
    proc = heron_until(args, db, 1)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C in a terminal: the tuner and its workers
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "interrupted" in stderr and "re-run the same command" in stderr and "Traceback" not in stderr
    assert not stdout  # --quiet: no PASS line for an unfinished task
    done = count(db)
    assert 0 < done < 40 and done % 4 == 0  # whole batches only
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = {r[0]: r[1] for r in conn.execute("SELECT point_key, created FROM records")}
    conn.close()
    out = heron(*args[:-2], db=db, check=True).stdout
    assert f"{40 - done} measured now" in out and count(db) == 40
    conn = sqlite3.connect(db)
    after = {r[0]: r[1] for r in conn.execute("SELECT point_key, created FROM records")}
    conn.close()
    assert all(after[k] == v for k, v in before.items())  # nothing re-measured
