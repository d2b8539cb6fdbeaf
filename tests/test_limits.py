"""Huge shapes and counts that scale work are refused at once, with one clear message."""

import time

import pytest
from conftest import heron

from heron_core import limits
from heron_core.config import build_config, plan
from heron_core.errors import ConfigError
from heron_core.registry import registry
from heron_core.space import divisors


def test_divisors_is_fast_on_huge_extents():
    assert divisors(1) == [1] and divisors(36) == [1, 2, 3, 4, 6, 9, 12, 18, 36] and divisors(97) == [1, 97]
    t0 = time.perf_counter()
    assert divisors(2**30) == [2**i for i in range(31)]
    assert time.perf_counter() - t0 < 1.0  # O(n): about a minute


def test_huge_shape_exits_2_at_once(tmp_path):
    db = tmp_path / "r.db"
    t0 = time.time()
    proc = heron("tune", "--shape", "M=1099511627776,K=64,N=64", "--trials", "4", db=db, timeout=60)
    assert proc.returncode == 2 and time.time() - t0 < 30, proc.stderr
    message = " ".join(proc.stderr.split())
    assert "int32 index range" in message and "Traceback" not in message and not db.exists()


@pytest.mark.parametrize(
    "shape, message",
    [
        ({"M": 65536, "K": 65536, "N": 16}, "4,294,967,296 elements, beyond the int32 index range"),
        ({"M": 2**31, "K": 16, "N": 16}, "extent 2,147,483,648, beyond the int32 index range"),
    ],
)
def test_int32_index_range(shape, message):
    cfg = build_config({"target": {"name": "dlboost", "microkernel": "generic"}, "cases": [{"op": "gemm", "shape": shape}]})
    with pytest.raises(ConfigError, match=message):
        plan(cfg, registry())


def test_tensors_beyond_memory(monkeypatch):
    monkeypatch.setattr(limits, "memory_bytes", lambda: 2**20)
    shape = {"M": 512, "K": 512, "N": 512}  # 256 + 256 KiB of int8, 1 MiB of int32
    cfg = build_config({"target": {"name": "dlboost", "microkernel": "generic"}, "cases": [{"op": "gemm", "shape": shape}]})
    with pytest.raises(ConfigError, match=r"its tensors need 1.5 MiB, more than the 1.0 MiB of memory available here"):
        plan(cfg, registry())


@pytest.mark.parametrize(
    "data, message",
    [
        ({"trials": 10**9}, "trials: Input should be less than or equal to 1000000"),
        ({"batch_size": 10**6}, "batch_size: Input should be less than or equal to 4096"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"search": {"name": "crand", "candidates_per_trial": 10**7}}, "candidates_per_trial"),
        ({"runner": {"name": "local", "parallel": 10**5}}, "parallel: Input should be less than or equal to 1024"),
        ({"runner": {"name": "local", "repeat": 10**9}}, "repeat"),
        ({"runner": {"name": "local", "number": 10**9}}, "number"),
        ({"runner": {"name": "local", "run_timeout": 1e12}}, "run_timeout"),
    ],
)
def test_counts_that_scale_work_are_bounded(data, message):
    with pytest.raises(ConfigError, match=message):
        plan(build_config({"target": {"name": "dlboost", "microkernel": "generic"}, **data}), registry())


def test_searcher_populations_are_bounded():
    pytest.importorskip("heron_search_ga")
    for key in ("pop_num", "select_num", "iter_walks"):
        cfg = build_config({"target": {"name": "dlboost", "microkernel": "generic"}, "search": {"name": "cga", key: 10**8}})
        with pytest.raises(ConfigError, match=f"searcher 'cga': {key}: Input should be less than or equal to 10000"):
            plan(cfg, registry())
