"""The sm_90a (wgmma + TMA) template on any machine: its space obeys the Hopper rules, and sampled
points compile (nvcc, sm_90a) to PTX with wgmma, bulk tensor copies and mbarriers, without spills."""

from __future__ import annotations

import random
import re
import shutil
import subprocess

import pytest
from heron_gpu_tensorcore import wgmma
from heron_gpu_tensorcore.device import SM90

from heron_core.errors import ConfigError
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec


def task(op: str, shape: dict, in_dtype: str = "float16", out_dtype: str = "float32") -> Task:
    ref = PluginRef(name="tensorcore", params={"arch": "sm_90a"})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype=in_dtype, out_dtype=out_dtype))


CASES = {
    "gemm": ({"M": 256, "K": 256, "N": 512}, "bfloat16", "bfloat16"),
    "dense": ({"M": 16, "K": 512, "N": 1024}, "bfloat16", "float32"),
    "bmm": ({"batch": 2, "M": 128, "K": 64, "N": 128}, "float16", "float16"),
}


@pytest.mark.parametrize("op", sorted(CASES))
def test_sampled_points_obey_the_hopper_rules(op):
    shape, din, dout = CASES[op]
    t = task(op, shape, din, dout)
    points = SearchSpace(t).sample(16, random.Random(1))
    assert points
    for p in points:
        cfg = wgmma.config_of(p)
        width = cfg.swizzle // 2
        assert cfg.block_n % 8 == 0 and cfg.block_n <= 256 and cfg.block_k % width == 0
        assert op == "dense" or cfg.block_n % width == 0  # MN-major B: whole swizzled rows
        assert cfg.smem_bytes(4 if dout == "float32" else 2) <= SM90.max_shared_per_block
        assert cfg.m_tiles * cfg.block_n // 2 + wgmma.RESERVED_REGISTERS <= cfg.consumer_registers
        assert not cfg.setmaxnreg or cfg.consumers >= 2
        assert cfg.block_m <= max(64, shape["M"])  # M = 16: one m64 tile
        tiles = shape.get("batch", 1) * -(-shape["M"] // cfg.block_m) * -(-shape["N"] // cfg.block_n)
        assert cfg.split_k == 1 or tiles * cfg.split_k <= SM90.sm_count  # split-K: one wave
        assert -(-shape["K"] // cfg.block_k) // cfg.split_k >= max(1, cfg.stages - 1)


def test_setmaxnreg_budgets_fit_the_register_file():
    for consumers in wgmma.CONSUMERS:
        regs = wgmma.consumer_registers(consumers, 1)
        assert regs % 8 == 0 and wgmma.WARPGROUP * (wgmma.PRODUCER_REGISTERS + consumers * regs) <= wgmma.REGISTER_FILE
    assert wgmma.consumer_registers(2, 1) == 232 and wgmma.consumer_registers(2, 0) == 168


def test_refuses_what_tma_cannot_load():
    with pytest.raises(ConfigError, match="multiples of 8"):
        task("gemm", {"M": 64, "K": 60, "N": 64}).target.check_task(task("gemm", {"M": 64, "K": 60, "N": 64}))
    with pytest.raises(ConfigError, match="fp16 or bf16"):
        t = task("gemm", {"M": 64, "K": 64, "N": 64}, "bfloat16", "float16")
        t.target.check_task(t)


def compile_sm90a(src: str, tmp_path) -> tuple[str, str]:
    """The PTX nvcc makes of ``src`` for sm_90a, and ptxas's verbose report of its cubin."""
    cu = tmp_path / "k.cu"
    cu.write_text(src)
    arch = ["-gencode", "arch=compute_90a,code=sm_90a"]
    subprocess.run(["nvcc", *arch, "-ptx", "-o", str(tmp_path / "k.ptx"), str(cu)], check=True, capture_output=True)
    report = subprocess.run(["nvcc", *arch, "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(cu)],
                            check=True, capture_output=True, text=True).stderr  # fmt: skip
    return (tmp_path / "k.ptx").read_text(), report


@pytest.mark.parametrize("op", sorted(CASES))
def test_points_compile_to_wgmma_and_tma_for_sm90a(cuda_build, op, tmp_path):
    shape, din, dout = CASES[op]
    t = task(op, shape, din, dout)
    # dense (M = 16: 16 tiles at most) takes a split-K point: its workspace atomics and counters compile too
    points = SearchSpace(t).sample(8, random.Random(3))
    point = next(p for p in points if p["split_k"] > 1) if op == "dense" else points[0]
    src = cuda_build(t, point)  # built by TVM (TIRx pipeline) and nvcc for sm_90a
    assert "__grid_constant__ CUtensorMap" in src
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc")
    ptx, ptxas = compile_sm90a(src, tmp_path)
    assert re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n\d+k16\.f32\.(bf16|f16)", ptx)
    assert "cp.async.bulk.tensor.3d" in ptx and "mbarrier.try_wait.parity" in ptx
    assert ("setmaxnreg" in ptx) == bool(point["setmaxnreg"])
    assert ("bar.red.or.pred" in ptx) == (point["split_k"] > 1)
    assert "0 bytes spill stores" in ptxas and "C7508" not in ptxas  # setmaxnreg honoured, accumulators in registers


CONVS = {  # implicit GEMMs: weights by TMA, the im2col rows gathered by cp.async (zero-filled padding)
    "conv2d": {"N": 2, "C": 64, "H": 14, "W": 14, "K": 128, "R": 3, "S": 3, "stride": 1, "pad": 1},
    "conv1d": {"N": 2, "C": 32, "W": 30, "K": 64, "S": 3, "stride": 2, "pad": 2},
    "conv3d": {"N": 1, "C": 16, "D": 4, "H": 6, "W": 6, "K": 64, "T": 3, "R": 3, "S": 3, "stride": 1, "pad": 1},
}


def test_convolutions_take_the_wgmma_template_where_they_can_be_gathered():
    conv = task("conv2d", CONVS["conv2d"], "float16", "float16")
    assert conv.context.uses_wgmma(conv) and set(conv.context.arg_layouts(conv)) == {"x", "w"}
    odd = task("conv2d", {**CONVS["conv2d"], "C": 12}, "float16", "float16")  # 12 channels: no 16-byte chunks
    assert not odd.context.uses_wgmma(odd)
    points = SearchSpace(conv).sample(8, random.Random(2))
    assert all(wgmma.config_of(p, wgmma.gather_of(conv.op)).producer_registers == wgmma.GATHER_PRODUCER_REGISTERS
               for p in points)  # fmt: skip
    pixels = task("conv2d", {**CONVS["conv2d"], "H": 7, "W": 7, "N": 2}, "float16", "float16")  # 25 pixels per image
    assert not pixels.context.uses_wgmma(pixels)


@pytest.mark.parametrize("op", sorted(CONVS))
def test_conv_points_compile_to_wgmma_with_a_cp_async_gather(cuda_build, op, tmp_path):
    t = task(op, CONVS[op], "float16", "float16")
    point = SearchSpace(t).sample(4, random.Random(5))[0]
    src = cuda_build(t, point)
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc")
    ptx, ptxas = compile_sm90a(src, tmp_path)
    assert re.search(r"wgmma\.mma_async\.sync\.aligned\.m64n\d+k16\.f32\.f16\.f16", ptx)
    assert "cp.async.bulk.tensor.3d" in ptx  # the weights
    assert re.search(r"cp\.async\.c[ag]\.shared\.global(\.L2::\w+)? \[%r\d+\], \[%rd\d+\], 16, %r\d+", ptx)  # zero-fill
    assert "fence.proxy.async.shared::cta" in ptx and "cp.async.wait_group" in ptx
    assert "0 bytes spill stores" in ptxas and "C7508" not in ptxas
