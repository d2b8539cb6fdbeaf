"""Fused epilogues (bias, ReLU, requantization, dequantization) in the dlboost and amx kernels' write-back: exact against
numpy (the float32 dequantization within its tolerance)."""

import random

import numpy as np
import pytest

from heron_core.ops.dense import Dense, DenseShape
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost.cpu import host_cpu

MICROKERNELS = {
    "dlboost": "vnni" if host_cpu().has_vnni else "generic",
    "amx": "amx" if {"amx_tile", "amx_int8"} <= host_cpu().flags else "generic",
}

CASES = [
    ("dense", {"M": 16, "K": 32, "N": 32, "bias": 1, "relu": 1}, "uint8"),
    ("gemm", {"M": 16, "K": 32, "N": 32, "bias": 1}, "int32"),
    ("gemm", {"M": 16, "K": 32, "N": 32, "relu": 1}, "int8"),
    ("conv2d", {"N": 1, "C": 8, "H": 9, "W": 9, "K": 32, "R": 3, "S": 3, "pad": 1, "bias": 1, "relu": 1}, "uint8"),
    ("conv2d", {"N": 1, "C": 8, "H": 6, "W": 6, "K": 16, "R": 1, "S": 1, "channels_last": 1, "bias": 1}, "int8"),
    # padded extents: the epilogue writes the logical part of a padded accumulator
    ("dense", {"M": 1, "K": 30, "N": 40, "bias": 1, "relu": 1}, "uint8"),
    ("conv2d", {"N": 1, "C": 3, "H": 7, "W": 7, "K": 24, "R": 3, "S": 3, "pad": 1, "bias": 1}, "int8"),
    # dequantized: float32 = acc * scale[c] + shift[c], both per call (a dynamic int8 layer's end)
    ("dense", {"M": 5, "K": 36, "N": 40}, "float32"),
    ("conv2d", {"N": 1, "C": 8, "H": 6, "W": 6, "K": 16, "R": 3, "S": 3, "pad": 1, "relu": 1}, "float32"),
]


def make(op: str, shape: dict, out_dtype: str, target: str = "dlboost") -> Task:
    ref = PluginRef(name=target, params={"num_cores": 2, "microkernel": MICROKERNELS[target]})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="int8", out_dtype=out_dtype))


@pytest.mark.parametrize("target", ["dlboost", "amx"])  # amx: its tile kernels where the CPU has AMX, else generic
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{'-'.join(k for k in ('bias', 'relu') if k in c[1])}")
def test_epilogue_points_match_numpy_exactly(case, target, check_points):
    task = make(*case, target)
    assert "acc_level" in SearchSpace(task).knobs
    points = SearchSpace(task).sample(3, random.Random(0))
    assert all(p["acc_level"] < 2 for p in points)  # the accumulator is a cache under an epilogue
    check_points(task, points)


def test_requantization_rounds_half_to_even_and_saturates():
    e = make("gemm", {"M": 16, "K": 4, "N": 16}, "uint8").op.epilogue
    acc = np.array([[1, 3, 5, -7, 1000, -1000] + [0] * 10] * 1, dtype=np.int64)
    arrays = {"scale": np.full(16, 0.5, np.float32), "zero": np.full(16, 10, np.int32)}
    out = e.reference(acc, arrays)
    assert out[0, :6].tolist() == [10, 12, 12, 6, 255, 0]  # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -3.5 -> -4


def test_random_operands_do_not_saturate_everything():
    task = make(*CASES[0])
    arrays = task.op.random_inputs()
    out = task.op.reference(arrays)
    assert out.dtype == np.uint8 and 0.2 < np.mean((out > 0) & (out < 255))


def test_dequantization_takes_per_call_scale_and_shift():
    """A float32 output from int8 inputs dequantizes (scale and shift are inputs, passed each call); float inputs
    keep their own float32 output and no epilogue."""
    e = make("dense", {"M": 2, "K": 4, "N": 16}, "float32").op.epilogue
    assert [(t.name, t.dtype, t.role) for t in e.tensors()] == [("scale", "float32", "input"), ("shift", "float32", "input")]
    acc = np.arange(32).reshape(2, 16)
    arrays = {"scale": np.full(16, 0.5, np.float32), "shift": np.arange(16, dtype=np.float32)}
    assert np.array_equal(e.reference(acc, arrays), acc * np.float32(0.5) + np.arange(16, dtype=np.float32))
    half = Dense(DenseShape(M=2, K=4, N=16), "float16", "float32")
    assert half.acc_dtype == "float32" and half.epilogue is None
