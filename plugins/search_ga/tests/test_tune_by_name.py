import os
import subprocess
import sys

import pytest

from heron_cpu_dlboost.cpu import host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"


def heron(*args):
    return subprocess.run([sys.executable, "-m", "heron_core.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=600)


@pytest.mark.parametrize("search", ["cga", "sa", "ga"])
def test_searchers_and_gbdt_tune_by_name(tmp_path, search):
    proc = heron("tune", "--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}", "--shape", "M=32,K=64,N=32",
                 "--trials", "12", "--batch-size", "6", "--search", search, "--model", "gbdt",
                 "--model-param", "min_samples=4", "--search-param", "pop_num=16", "--quiet", "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 0, proc.stderr
    assert "PASS / Case [32, 64, 32]" in proc.stdout and "12 trials" in proc.stdout


def test_a_param_of_another_searcher_names_its_owner(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[search]\nname = "sa"\ncrossover_key_ratio = 0.3\n')
    proc = heron("tune", "-c", str(toml), "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 2 and "belongs to searcher 'cga'" in proc.stderr
