import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from heron_cpu_dlboost.cpu import host_cpu

HAS_VNNI = host_cpu().has_vnni
# On a CPU without VNNI the same templates run with the generic micro-kernel.
MICROKERNEL = "vnni" if HAS_VNNI else "generic"


@pytest.fixture
def dlboost():
    """Target section for dlboost that can run kernels on this machine."""
    return {"name": "dlboost", "microkernel": MICROKERNEL}


def heron(
    *args, db: Path | None = None, check: bool = False, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "heron_core.cli", *args]
    if db is not None:
        cmd += ["--db", str(db)]
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"heron {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def count_records(db: Path, status: str | None = None) -> int:
    """Records in ``db`` (with ``status``, if given); 0 while the tuner has not created it yet."""
    if not Path(db).exists():
        return 0
    q = "SELECT COUNT(*) FROM records" + (" WHERE status=?" if status else "")
    try:
        conn = sqlite3.connect(db)
        try:
            return conn.execute(q, (status,) if status else ()).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # polled while the schema is being created
        return 0


def heron_until(args: list[str], db: Path, records: int, output=subprocess.PIPE) -> subprocess.Popen:
    """``heron ARGS`` started in its own process group (a signal to the group reaches the tuner and its
    workers, like Ctrl-C in a terminal), returned once ``db`` holds ``records`` records (or after 300 s)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "heron_core.cli", *args], start_new_session=True, stdout=output, stderr=output, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and count_records(db) < records:
        time.sleep(0.05)
    return proc
