import os
import subprocess
import sys
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
