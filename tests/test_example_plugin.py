"""A separately installed package adds a searcher and an operator without touching the core."""

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MICROKERNEL, heron

PLUGIN = Path(__file__).parent / "example_plugin"


@pytest.fixture(scope="module")
def installed():
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "-e", str(PLUGIN)], check=True, capture_output=True)
    yield
    # this test process cannot import an editable install made after it started: leave no trace
    subprocess.run([*pip, "uninstall", "-q", "-y", "heron-example-plugin"], check=True, capture_output=True)


def test_example_plugin_is_listed_and_tunes(installed, tmp_path):
    listing = heron("plugins", check=True).stdout
    assert "hillclimb" in listing and "matmul_tn" in listing and "heron-example-plugin" in listing
    out = heron("tune", "--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}", "--op", "matmul_tn",
                "--shape", "M=32,N=32,K=64", "--search", "hillclimb", "--trials", "6", "--batch-size", "3", "--quiet",
                db=tmp_path / "r.db", check=True).stdout
    assert "PASS / Case [32, 32, 64]" in out and "matmul_tn[M=32,N=32,K=64]" in out
