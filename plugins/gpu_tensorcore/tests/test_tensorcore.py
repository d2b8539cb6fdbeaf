"""The tensorcore target on any machine: spaces build, sampled points satisfy the GPU's rules,
and they lower and compile to CUDA for sm_90 (nvcc; a stub libcuda stands in for the driver
when there is no GPU). Kernels run only where a GPU is present."""

from __future__ import annotations

import random
import re
from math import prod

import numpy as np
import pytest
from heron_gpu_tensorcore import intrin
from heron_gpu_tensorcore.context import _smem_bytes, pitch
from heron_gpu_tensorcore.device import MAX_REGISTERS_PER_THREAD, SM90, query
from heron_gpu_tensorcore.gemm_view import packed_index

from heron_core.errors import ConfigError, TargetUnavailable
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec


def task(op: str, shape: dict, out_dtype: str = "float16", **params) -> Task:
    ref = PluginRef(name="tensorcore", params={"arch": "sm_90", **params})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="float16", out_dtype=out_dtype))


def block(point: dict) -> tuple[int, int, int, int]:
    fm, fn, _ = intrin.FRAGMENTS[point["frag"]]
    return point["m_warps"] * point["m_frags"] * fm, point["n_warps"] * point["n_frags"] * fn, 16 * point["k_frags"], (
        point["m_warps"] * point["n_warps"] * 32
    )


def test_limits_come_from_the_device_or_say_they_are_sm90_defaults():
    gpu = query()
    if gpu.present:
        assert gpu.max_shared_per_block >= 48 * 1024 and gpu.arch.startswith("sm_")
    else:
        assert "sm_90" in gpu.source and gpu.max_shared_per_block == SM90.max_shared_per_block == 227 * 1024


def test_tune_config_defaults_to_fp16():
    """`heron tune --target tensorcore` with no dtypes: the target's fp16 -> fp16, not the config's int8."""
    from heron_core import config as cfgmod
    from heron_core.registry import registry

    cfg, legacy, _ = cfgmod.load(None, {"target": {"name": "tensorcore"}})
    spec = cfgmod.plan(cfg, registry(), legacy).tasks[0]
    assert (spec.op, spec.in_dtype, spec.out_dtype) == ("gemm", "float16", "float16")
    cfg, legacy, _ = cfgmod.load(None, {"target": {"name": "tensorcore"}, "out_dtype": "float32"})
    assert cfgmod.plan(cfg, registry(), legacy).tasks[0].out_dtype == "float32"


def test_refuses_without_gpu_and_for_other_dtypes_or_operators():
    if not query().present:
        with pytest.raises(TargetUnavailable, match="needs an NVIDIA GPU"):
            task("gemm", {"M": 64, "K": 64, "N": 64}).target.check_host()
    with pytest.raises(ConfigError, match="fp16"):
        Task(TaskSpec(target=PluginRef(name="tensorcore"), op="gemm", shape={"M": 64, "K": 64, "N": 64},
                      in_dtype="int8", out_dtype="int32"))  # fmt: skip
    with pytest.raises(ConfigError, match="leave out channels_last=1"):
        task("conv2d", {"N": 1, "C": 16, "H": 8, "W": 8, "K": 16, "R": 3, "S": 3, "pad": 1, "channels_last": 1})


GEMM_SHAPES = [{"M": 4096, "K": 4096, "N": 4096}, {"M": 32, "K": 2048, "N": 1000}, {"M": 512, "K": 16, "N": 64}]


@pytest.mark.parametrize("shape", GEMM_SHAPES)
def test_every_sampled_point_obeys_the_gpu_rules(shape):
    """Property, checked independently of the CP-SAT encoding: tiles divide the padded extents,
    32x8x16 (unaligned wmma pointers) never appears, threads, shared memory and registers fit."""
    t = task("gemm", shape)
    gpu = t.target.gpu
    space = SearchSpace(t)
    Mp, Np, Kp = t.context.compute(t).view.padded
    points = space.sample(40, random.Random(3))
    assert len(points) == 40
    for p in points:
        bm, bn, bk, threads = block(p)
        assert Mp % bm == 0 and Np % bn == 0 and (Kp // 16) % p["k_frags"] == 0
        assert p["frag"] != 1
        assert threads <= gpu.max_threads_per_block
        assert _smem_bytes(t.context.compute(t), t, p) <= gpu.max_shared_per_block
        regs = p["m_frags"] * p["n_frags"] * 4 + (p["m_frags"] * intrin.FRAGMENTS[p["frag"]][0]
                                                  + p["n_frags"] * intrin.FRAGMENTS[p["frag"]][1]) // 4 + 40  # fmt: skip
        assert regs <= MAX_REGISTERS_PER_THREAD and regs * threads <= gpu.max_registers_per_block
        assert (bm * bk) % (threads * p["vec_a"]) == 0 and (bk * bn) % (threads * p["vec_b"]) == 0
        assert p["stages"] <= Kp // bk and (not p["async_copy"] or (p["stages"] > 1 and min(p["vec_a"], p["vec_b"]) >= 2))
        assert space.is_valid(p)


def test_invalid_points_are_rejected():
    t = task("gemm", {"M": 256, "K": 256, "N": 256})
    space = SearchSpace(t)
    p = space.sample(1, random.Random(0))[0]
    assert not space.is_valid({**p, "frag": 1})  # 32x8x16: B fragments 16 bytes apart
    assert not space.is_valid({**p, "frag": 0, "m_warps": 8, "n_warps": 8, "m_frags": 8})  # > 256 rows and > 1024 threads
    assert not space.is_valid({**p, "stages": 1, "async_copy": 1})


def test_shared_memory_limit_is_a_constraint():
    t = task("gemm", {"M": 4096, "K": 4096, "N": 4096})
    small = SearchSpace(t)
    t.target.gpu = type(t.target.gpu)(**{**t.target.gpu.__dict__, "max_shared_per_block": 48 * 1024})
    for p in SearchSpace(t).sample(20, random.Random(1)):
        assert _smem_bytes(t.context.compute(t), t, p) <= 48 * 1024
    big = {"frag": 0, "mma": 0, "m_warps": 4, "n_warps": 2, "m_frags": 4, "n_frags": 4, "k_frags": 4, "stages": 4,
           "async_copy": 1, "vec_a": 8, "vec_b": 8, "pad_a": 8, "pad_b": 8, "unroll": 0}  # fmt: skip
    assert small.is_valid(big) and not SearchSpace(t).is_valid(big)


def test_pitch_is_the_storage_align_row():
    assert [pitch(w, 8) for w in (16, 32, 64, 128)] == [40, 40, 72, 136]
    assert pitch(64, 0) == 64


def test_tolerance_scales_with_the_reduction():
    rtol, atol = task("gemm", {"M": 64, "K": 1024, "N": 64}).context.tolerance(task("gemm", {"M": 64, "K": 1024, "N": 64}))
    assert rtol == 1e-2 and atol == pytest.approx(4e-2 * 32)
    t = task("gemm", {"M": 64, "K": 64, "N": 64}, out_dtype="float32")
    assert t.context.tolerance(t) == (1e-3, pytest.approx(8e-3))


CONV_SHAPES = {
    "conv1d": {"N": 2, "C": 16, "W": 9, "K": 32, "S": 3, "stride": 1, "pad": 1},
    "conv2d": {"N": 2, "C": 16, "H": 7, "W": 7, "K": 32, "R": 3, "S": 3, "stride": 2, "pad": 1},
    "conv3d": {"N": 1, "C": 8, "D": 3, "H": 4, "W": 4, "K": 16, "T": 3, "R": 3, "S": 3, "stride": 1, "pad": 1},
    "t2d": {"N": 2, "C": 16, "H": 5, "W": 5, "K": 32, "R": 3, "S": 3, "stride": 2, "pad": 1},
}


@pytest.mark.parametrize("op", sorted(CONV_SHAPES))
def test_convolutions_read_channels_last_arguments(op):
    """Implicit GEMMs take activations and weights channels-last (NHWC, KRSC: contiguous along the
    reduction); the readers find each logical element where the layout's pack put it."""
    t = task(op, CONV_SHAPES[op])
    view = t.context.compute(t).view
    assert view.b_layout == "nk" and set(view.layouts) == {"x", "w"} == set(t.context.arg_layouts(t))
    assert view.vec_a == view.vec_b == 8
    rng = np.random.default_rng(0)
    for spec in t.op.inputs:
        layout, channel_dim = view.layouts[spec.name], view.layouts[spec.name].reduce_dim
        logical = np.arange(prod(spec.shape)).reshape(spec.shape)
        packed = layout.pack(logical)
        outer = 1 - channel_dim  # batch (x), output channels (w); t2d's weight is C, K, R, S
        expected = np.moveaxis(logical, [outer, channel_dim], [0, -1])
        assert np.array_equal(packed.reshape(-1), expected.reshape(-1)), spec.name
        for _ in range(20):
            idx = tuple(int(rng.integers(n)) for n in spec.shape)
            assert packed[packed_index(layout, spec.shape, idx)] == logical[idx]


# --- compile to CUDA for sm_90 (no GPU needed) -------------------------------------------------
COMPILE_CASES = {
    "gemm": ({"M": 128, "K": 256, "N": 128}, "float16"),
    "dense": ({"M": 64, "K": 64, "N": 48}, "float32"),  # B^T: col-major B fragments
    "bmm": ({"batch": 2, "M": 64, "K": 64, "N": 128}, "float32"),
    "conv2d": ({"N": 2, "C": 16, "H": 7, "W": 7, "K": 32, "R": 3, "S": 3, "stride": 1, "pad": 1}, "float16"),  # padded, staged
    "gemv": ({"M": 64, "K": 48}, "float16"),
}


@pytest.mark.parametrize("op", sorted(COMPILE_CASES))
def test_sampled_points_compile_to_tensor_core_cuda(op, cuda_build):
    shape, out = COMPILE_CASES[op]
    t = task(op, shape, out)
    points = SearchSpace(t).sample(2, random.Random(len(op)))
    for p in points:
        src = cuda_build(t, p)
        if p["mma"]:
            assert "mma.sync.aligned.m16n8k16" in src and "ldmatrix.sync.aligned" in src
        else:
            assert "wmma::mma_sync" in src and "wmma::load_matrix_sync" in src
        if p["async_copy"]:
            assert "cp.async" in src


def test_async_pipeline_emits_cp_async(cuda_build):
    t = task("gemm", {"M": 128, "K": 256, "N": 128})
    space = SearchSpace(t)
    p = space.complete({"stages": 3, "async_copy": 1, "vec_a": 8, "vec_b": 8}, random.Random(0))
    assert p is not None
    src = cuda_build(t, p)
    assert "cp.async" in src and "wmma::mma_sync" in src


@pytest.mark.parametrize("async_copy", [0, 1])
def test_convolution_gathers_are_16_byte_loads(cuda_build, async_copy):
    """The im2col gather of the activation and the weight rows move 8 channels (16 bytes) per load,
    with one zero-padding test for all of them (cp.async zero-fills when the test fails)."""
    t = task("conv2d", {"N": 2, "C": 32, "H": 8, "W": 8, "K": 32, "R": 3, "S": 3, "stride": 1, "pad": 1})
    fixed = {"stages": 2 if async_copy else 1, "async_copy": async_copy, "vec_a": 8, "vec_b": 8}
    src = cuda_build(t, SearchSpace(t).complete(fixed, random.Random(0)))
    for arg in ("x_ptr", "w_ptr"):
        if async_copy:
            assert re.search(r"cp_async\w*_16\w*\(buf_dyn_shmem_ptr, [^;]*" + arg, src), arg
        else:
            assert f"*(uint4*)({arg} +" in src, arg
    assert "wmma::col_major" in src


# --- mma.sync m16n8k16 + ldmatrix -------------------------------------------------------------
def test_mma_is_a_knob_of_sm80_and_newer_with_16x16x16_tiles():
    t = task("gemm", {"M": 256, "K": 256, "N": 256})
    space = SearchSpace(t)
    points = space.sample(40, random.Random(2))
    assert {p["mma"] for p in points} == {0, 1}
    assert all(p["frag"] == 0 and p["unroll"] == 0 for p in points if p["mma"])
    p = space.complete({"mma": 1}, random.Random(0))
    assert not space.is_valid({**p, "frag": 2})  # mma tiles are 16x16x16
    old = task("gemm", {"M": 256, "K": 256, "N": 256}, arch="sm_75")
    assert SearchSpace(old).knobs["mma"].values == [0]


MMA_CASES = {
    "gemm": ({"M": 128, "K": 256, "N": 128}, "float32", {"stages": 3, "async_copy": 1}),  # B[k, n]: ldmatrix.trans
    "dense": ({"M": 64, "K": 64, "N": 48}, "float16", {}),  # B^T[n, k]
    "conv2d": ({"N": 2, "C": 16, "H": 7, "W": 7, "K": 32, "R": 3, "S": 3, "stride": 1, "pad": 1}, "float16", {}),  # staged
}


@pytest.mark.parametrize("op", sorted(MMA_CASES))
def test_mma_points_compile_to_ldmatrix_and_mma_sync(op, cuda_build):
    shape, out, fixed = MMA_CASES[op]
    t = task(op, shape, out)
    p = SearchSpace(t).complete({"mma": 1, **fixed}, random.Random(1))
    src = cuda_build(t, p)
    assert "mma.sync.aligned.m16n8k16.row.col" in src
    assert "ldmatrix.sync.aligned.m8n8.x4" in src and "wmma" not in src
    # every warp-scope fragment became a per-thread array (8 elements per 16x16 tile): none is
    # left warp-sized in local memory, none is read through a shuffle
    sizes = [int(n) for n in re.findall(r"_warp_ptr(?:_\d+)?\[(\d+)\];", src)]
    assert len(sizes) >= 3 and max(sizes) <= 8 * p["m_frags"] * p["n_frags"], sizes
    assert "__shfl" not in src and not re.search(r"_warp_ptr \+ [^;]*threadIdx", src)
    assert ("ldmatrix.sync.aligned.m8n8.x4.trans" in src) == (t.context.compute(t).view.b_layout == "kn")
    if fixed.get("async_copy"):
        assert "cp.async" in src


# --- on a GPU: every sampled point is a correct kernel ----------------------------------------
@pytest.mark.skipif(not query().present, reason="no usable NVIDIA GPU here: kernels are compiled but not run")
@pytest.mark.parametrize("op", ["gemm", "bmm", "dense", "conv2d", "gemv", "conv1d", "conv3d", "t2d"])
def test_every_sampled_point_is_correct_on_the_gpu(op):
    from heron_core.runner import LocalRunner, LocalRunnerParams

    shape, out = COMPILE_CASES[op] if op in COMPILE_CASES else (CONV_SHAPES[op], "float16")
    t = task(op, shape, out, arch=None)
    points = SearchSpace(t).sample(4, random.Random(5))
    with LocalRunner(LocalRunnerParams(repeat=1, number=1, min_repeat_ms=0)) as runner:
        results = list(runner.run(t, points))
    assert all(r.ok for r in results), [(r.point, r.status, r.error) for r in results if not r.ok]


@pytest.mark.skipif(not query().present, reason="no usable NVIDIA GPU here: kernels are compiled but not run")
@pytest.mark.parametrize("op, out", [("gemm", "float32"), ("dense", "float16"), ("conv2d", "float32"), ("t2d", "float16")])
def test_mma_points_are_correct_on_the_gpu(op, out):
    from heron_core.runner import LocalRunner, LocalRunnerParams

    shape = COMPILE_CASES[op][0] if op in COMPILE_CASES else CONV_SHAPES[op]
    t = task(op, shape, out, arch=None)
    space = SearchSpace(t)
    rng = random.Random(7)
    points = [space.complete({"mma": 1}, rng) for _ in range(3)]
    with LocalRunner(LocalRunnerParams(repeat=1, number=1, min_repeat_ms=0)) as runner:
        results = list(runner.run(t, points))
    assert all(r.ok for r in results), [(r.point, r.status, r.error) for r in results if not r.ok]


def test_reference_is_the_operator_own():
    t = task("gemm", {"M": 32, "K": 32, "N": 32})
    arrays = t.op.random_inputs(0)
    np.testing.assert_allclose(t.op.reference(arrays), (arrays["A"].astype(np.float64) @ arrays["B"]).astype(np.float16))
