"""A separately installed package adds a searcher and an operator without touching the core."""

import os
from pathlib import Path

import pytest
from conftest import MICROKERNEL, heron

PLUGIN = Path(__file__).parent / "example_plugin"


@pytest.fixture
def installed(tmp_path) -> dict[str, str]:
    """The environment of a Python where the plugin is installed: its distribution metadata (name, version,
    entry point, as `pip install` writes them) and its package on the path, for the heron processes alone."""
    dist = tmp_path / "site" / "heron_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: heron-example-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[heron]\nexample = heron_example_plugin\n")
    path = os.pathsep.join([str(tmp_path / "site"), str(PLUGIN), os.environ.get("PYTHONPATH", "")])
    return {"PYTHONPATH": path}


def test_example_plugin_is_listed_and_tunes(installed, tmp_path):
    listing = heron("plugins", check=True, env=installed).stdout
    assert "hillclimb" in listing and "matmul_tn" in listing and "heron-example-plugin" in listing
    out = heron("tune", "--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}", "--op", "matmul_tn",
                "--shape", "M=32,N=32,K=64", "--search", "hillclimb", "--trials", "6", "--batch-size", "3", "--quiet",
                db=tmp_path / "r.db", check=True, env=installed).stdout
    assert "PASS / Case [32, 32, 64]" in out and "matmul_tn[M=32,N=32,K=64]" in out
