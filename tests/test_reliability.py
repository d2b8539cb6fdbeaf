"""What goes wrong around a run: two runs on one database, a damaged database, a full disk, Ctrl-C
twice. Each gets one clear message and loses no committed record."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import MICROKERNEL, heron, heron_until

from heron_core.measure import MeasureResult, Status
from heron_core.records import RecordDB, RecordsError


def add(db: RecordDB, i: int, who: int = 0):
    return db.add(
        MeasureResult({"x": i, "who": who}, Status.OK, [1e-3 * (i + 1)]),
        workload_key="w",
        target_key="t",
        task={},
        target_info={},
        searcher="s",
        run_id=None,
        versions={},
    )


WRITER = """
import sys, time
from pathlib import Path
from heron_core.measure import MeasureResult, Status
from heron_core.records import RecordDB
path, who, go = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.01)
db = RecordDB(path)
db.start_run({"who": who}, {})
for i in range(60):
    db.add(MeasureResult({"x": i, "who": who}, Status.OK, [1e-3]), workload_key="w", target_key="t", task={},
           target_info={}, searcher="s", run_id=None, versions={})
    db.best("w")
db.close()
"""


def test_two_processes_write_one_database(tmp_path):
    """Opened at the same moment (the schema created twice) and written in turns: WAL + busy timeout."""
    path, go = tmp_path / "r.db", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(who), str(go)], stderr=subprocess.PIPE, text=True)
        for who in range(2)
    ]
    time.sleep(1.0)  # both started and waiting
    go.touch()
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    db = RecordDB(path)
    assert db.summary() == [("w", "t", 120, 120)]
    db.close()


def _fill(path):
    db = RecordDB(path)
    for i in range(200):
        add(db, i)
    db.close()


def test_damaged_database_gets_a_clear_message(tmp_path):
    path = tmp_path / "r.db"
    _fill(path)
    data = bytearray(path.read_bytes())
    keep = 8 * 4096  # the schema and the first pages: the database opens, its records do not read
    data[keep:] = os.urandom(len(data) - keep)
    path.write_bytes(bytes(data))
    for command in ("best", "report"):
        proc = heron(command, db=path)
        message = " ".join(proc.stderr.split())
        assert proc.returncode == 1 and "Traceback" not in message, proc.stderr
        assert f"records database {path}" in message and "damaged" in message
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 300)
    with pytest.raises(RecordsError, match="damaged or not a records database"):
        RecordDB(junk)


def test_full_disk_keeps_committed_records(tmp_path):
    path = tmp_path / "r.db"
    db = RecordDB(path)
    for i in range(5):
        add(db, i)
    pages = db.conn.execute("PRAGMA page_count").fetchone()[0]
    db.conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite then fails writes as on a full disk
    with pytest.raises(RecordsError, match="the disk is full; every record committed before is kept"):
        for i in range(5, 500):
            add(db, i)
    committed = db.summary()[0][2]
    db.close()
    db = RecordDB(path)
    assert db.summary()[0][2] == committed >= 5
    assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_second_ctrl_c_stops_at_once_and_keeps_the_records(tmp_path):
    db = tmp_path / "r.db"
    target = ["--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}"]
    args = ["tune", *target, "--shape", "M=32,K=64,N=32", "--trials", "16", "--batch-size", "4", "--quiet", "--db", str(db)]
    proc = heron_until(args, db, 1)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # the second: no waiting for the batch
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout + stderr
    assert "re-run the same command" in stderr and "Traceback" not in stderr
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    committed = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
    conn.close()
    assert 0 < committed < 16  # what was committed stays; a re-run resumes from it (tests/test_progress.py)

