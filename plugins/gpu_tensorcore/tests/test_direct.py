"""dep, mean and var on the tensorcore target (CUDA cores, DirectContext), and odd shapes (C=3
stems, N=1000 classifiers, primes) on every tensor-core operator: sampled points obey the rules and
compile with nvcc for sm_90 (the stub libcuda of conftest.py stands in for a driver)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from heron_gpu_tensorcore.direct_context import DirectContext

from heron_core.errors import ConfigError
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec


def task(op: str, shape: dict, out_dtype: str = "float16") -> Task:
    ref = PluginRef(name="tensorcore", params={"arch": "sm_90"})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="float16", out_dtype=out_dtype))


DIRECT = {
    "dep": ({"N": 1, "C": 19, "H": 13, "W": 11, "stride": 2}, "float16"),
    "conv2d": ({"N": 2, "C": 24, "H": 7, "W": 7, "K": 48, "R": 3, "S": 3, "pad": 1, "groups": 24}, "float32"),
    "mean": ({"M": 3, "N": 1000}, "float32"),
    "var": ({"M": 7, "N": 3136}, "float16"),
}


@pytest.mark.parametrize("op", sorted(DIRECT))
def test_direct_operators_compile_to_cuda(op, cuda_build):
    shape, out = DIRECT[op]
    t = task(op, shape, out)
    assert isinstance(t.context, DirectContext)
    space = SearchSpace(t)
    for p in space.sample(2, random.Random(3)):
        assert p["threads"] * p.get("rows", 1) <= t.target.gpu.max_threads_per_block
        src = cuda_build(t, p)
        assert "threadIdx.x" in src and "wmma" not in src
        if op in ("mean", "var"):
            assert "__shfl" in src  # the cross-thread sum: warp shuffles


def test_references_and_refusals():
    a = np.random.default_rng(0).standard_normal((5, 77)).astype(np.float16)
    assert np.allclose(task("var", {"M": 5, "N": 77}, "float32").op.reference({"A": a}), a.astype(np.float64).var(axis=1))
    assert task("mean", {"M": 5, "N": 77}).op.op_count() == 5 * 77
    with pytest.raises(ConfigError, match="not other grouped convolutions"):
        task("conv2d", {"N": 1, "C": 16, "H": 5, "W": 5, "K": 16, "R": 1, "S": 1, "groups": 2})


# Odd shapes on the tensor-core (GEMM) template: padded inside the kernel, never refused.
ODD = {
    "conv2d": {"N": 1, "C": 3, "H": 23, "W": 23, "K": 64, "R": 7, "S": 7, "stride": 2, "pad": 3},  # ResNet stem, smaller
    "dense": {"M": 1, "K": 2048, "N": 1000},  # the classifier
    "gemm": {"M": 100, "K": 100, "N": 100},
    "bmm": {"batch": 3, "M": 197, "K": 64, "N": 197},
    "gemv": {"M": 1000, "K": 17},
    "conv1d": {"N": 1, "C": 5, "W": 31, "K": 13, "S": 3, "pad": 1},
}


@pytest.mark.parametrize("op", sorted(ODD))
def test_odd_shapes_compile(op, cuda_build):
    t = task(op, ODD[op])
    for p in SearchSpace(t).sample(1, random.Random(7)):
        src = cuda_build(t, p)
        assert "wmma" in src or "mma.sync" in src
