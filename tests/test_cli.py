import json
import os
import signal
import sqlite3
import subprocess
from importlib.util import find_spec

import pytest
from conftest import MICROKERNEL, heron, heron_until
from conftest import count_records as count

TARGET = ["--target", "dlboost", "--target-param", f"microkernel={MICROKERNEL}"]


def test_tune_end_to_end_then_resume(tmp_path):
    db = tmp_path / "r.db"
    base = [*TARGET, "--shape", "M=32,K=64,N=32", "--batch-size", "3", "--quiet"]
    args = [*base, "--trials", "6"]
    first = heron("tune", *args, db=db, check=True)
    assert "PASS / Case [32, 64, 32], latency" in first.stdout and "GOPS" in first.stdout and "numpy" in first.stdout
    assert count(db) == 6
    again = heron("tune", *args, db=db, check=True)  # same command: nothing left to measure
    assert "0 measured now" in again.stdout and count(db) == 6
    more = heron("tune", *base, "--trials", "9", db=db, check=True)
    assert "3 measured now" in more.stdout and count(db) == 9
    best = heron("best", db=db, check=True)
    assert "gemm[M=32,K=64,N=32]:int8->int32" in best.stdout


def test_plugins_lists_core_and_dlboost():
    out = heron("plugins", check=True).stdout
    assert "dlboost" in out and "heron-cpu-dlboost" in out
    for name in ("crand", "none", "local", "gemm"):
        assert name in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--target", "dlboos"], "did you mean 'dlboost'"),
        # installed: int8 is refused (its own default dtypes are fp16); not installed: the distribution to install
        (["--target", "tensorcore", "--in-dtype", "int8"],
         "fp16 x fp16" if find_spec("heron_gpu_tensorcore") else "pip install heron-gpu-tensorcore"),
        (["--op", "gemm", "--shape", "M=64,K=0,N=64"], "K: Input should be greater than 0"),
        (["--shape", "M=64,Q=3"], "no shape parameter Q"),
        (["--trials", "0"], "trials"),
        (["--in-dtype", "float16"], "u8 x s8 -> s32"),
        (["--runner-param", "parallel=-1"], "parallel"),
        (["--runner-param", "candidates_per_trial=3"], "belongs to searcher 'crand'"),
        (["--target-param", "microkernel=avx2"], "microkernel"),
    ],
)
def test_bad_input_gets_one_clear_message_and_writes_nothing(tmp_path, args, message):
    db = tmp_path / "r.db"
    proc = heron("tune", *args, db=db)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr and not db.exists()


def test_config_files_json_toml_and_original_heron(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text(
        f'trials = 3\nbatch_size = 3\n[target]\nname = "dlboost"\nmicrokernel = "{MICROKERNEL}"\n'
        '[[cases]]\nop = "gemm"\nshape = {M = 16, K = 32, N = 16}\n[runner]\nname = "local"\nrepeat = 2\n'
    )
    out = heron("tune", "-c", str(toml), "--quiet", db=tmp_path / "a.db", check=True).stdout
    assert "PASS / Case [16, 32, 16]" in out
    original = tmp_path / "quick_start.json"  # the original's keys; CGA is not installed here
    original.write_text(json.dumps({"config": {
        "target_name": "llvm -mcpu=cascadelake", "method": "CRAND", "max_trials": 3, "pop_num": 200,
        "runner_number": 1, "runner_repeat": 2, "runner_timeout": 50, "build_timeout": 50,
        "in_dtype": "int8", "out_dtype": "int32", "out_name": "x", "cases": {"0": ["gemm", [16, 32, 16]]},
    }}))
    proc = heron("tune", "-c", str(original), "--target-param", f"microkernel={MICROKERNEL}", "--quiet",
                 db=tmp_path / "b.db", check=True)
    assert "PASS / Case [16, 32, 16]" in proc.stdout and "ignored original key 'out_name'" in proc.stderr
    assert "original key 'pop_num' has no meaning for searcher 'crand'" in " ".join(proc.stderr.split())
    bad = tmp_path / "bad.json"
    bad.write_text('{"trials": "many"}')
    proc = heron("tune", "-c", str(bad), db=tmp_path / "c.db")
    assert proc.returncode == 2 and "trials" in proc.stderr and not (tmp_path / "c.db").exists()


def test_killed_tune_loses_nothing_and_resumes(tmp_path):
    db = tmp_path / "r.db"
    args = ["tune", *TARGET, "--shape", "M=32,K=64,N=32", "--trials", "12", "--batch-size", "4", "--quiet", "--db", str(db)]
    proc = heron_until(args, db, 5, output=subprocess.DEVNULL)
    os.killpg(proc.pid, signal.SIGKILL)  # the tuner and its workers, mid-run
    proc.wait()
    done = count(db)
    assert 5 <= done < 12
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = {r[0]: r[1] for r in conn.execute("SELECT point_key, created FROM records")}
    conn.close()
    out = heron(*args[:-2], db=db, check=True).stdout
    assert f"{12 - done} measured now" in out and count(db) == 12
    conn = sqlite3.connect(db)
    after = {r[0]: r[1] for r in conn.execute("SELECT point_key, created FROM records")}
    assert all(after[k] == v for k, v in before.items())  # nothing lost, nothing re-measured
