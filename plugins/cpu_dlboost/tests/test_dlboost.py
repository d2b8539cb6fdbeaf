import random

import numpy as np
import pytest

from heron_core import tvm_compat
from heron_core.errors import TargetUnavailable
from heron_core.layout import BlockedLayout
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost.cpu import CPUInfo, host_cpu

MICROKERNEL = "vnni" if host_cpu().has_vnni else "generic"


def task(M, K, N, **target) -> Task:
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **target})
    return Task(TaskSpec(target=ref, op="gemm", shape={"M": M, "K": K, "N": N}, in_dtype="int8", out_dtype="int32"))


def test_packed_weight_layout():
    b = np.arange(8 * 32, dtype=np.int32).reshape(8, 32)  # (K, N)
    p = BlockedLayout(reduce_dim=0, lane_dim=1, lanes=16, reduce=4).pack(b)
    assert p.shape == (2, 2, 16, 4)
    for n in range(32):
        for k in range(8):
            assert p[n // 16, k // 4, n % 16, k % 4] == b[k, n]


def test_refuses_a_cpu_without_vnni():
    t = task(64, 64, 64)
    t.target.cpu = CPUInfo("Old CPU", frozenset({"avx2"}), 2, 32768, 1 << 20)
    with pytest.raises(TargetUnavailable, match="needs AVX-512 VNNI.*Old CPU"):
        t.target.check_host()
    task(64, 64, 64, microkernel="generic").target.check_host()  # the generic kernel runs anywhere


def test_cache_sizes_and_cores_come_from_this_machine():
    t = task(64, 64, 64, num_cores=3).target
    assert t.cores == 3 and t.l1_bytes == host_cpu().l1d_bytes and t.l2_bytes == host_cpu().l2_bytes
    assert t.tvm_target() == {"kind": "llvm", "mcpu": t.mcpu, "num-cores": 3}


@pytest.mark.parametrize("shape", [(64, 62, 64), (64, 64, 40)])
def test_shapes_the_micro_kernel_does_not_divide_are_accepted(shape):
    t = task(*shape)  # padded inside the kernel (test_any_shape.py checks the results)
    assert SearchSpace(t).sample(1, random.Random(0))


@pytest.mark.parametrize("mcpu", ["sapphirerapids", "znver4"])
def test_sampled_points_compile_to_vpdpbusd(mcpu):
    t = task(64, 128, 64, mcpu=mcpu)
    for point in SearchSpace(t).sample(3, random.Random(0)):
        asm = tvm_compat.assembly(tvm_compat.build(t.context.apply(t, point), t.target.tvm_target()))
        assert "vpdpbusd" in asm and "zmm" in asm


def test_generic_microkernel_has_no_vnni():
    t = task(32, 32, 32, microkernel="generic", mcpu="znver3")
    point = SearchSpace(t).sample(1, random.Random(0))[0]
    assert "vpdpbusd" not in tvm_compat.assembly(tvm_compat.build(t.context.apply(t, point), t.target.tvm_target()))


@pytest.mark.parametrize("shape", [(16, 4, 16), (48, 64, 32), (64, 128, 48)])
def test_every_sampled_point_builds_and_is_correct(shape, check_points):
    """Property: any point of the space is a correct kernel (runs on this CPU)."""
    t = task(*shape, microkernel=MICROKERNEL)
    points = SearchSpace(t).sample(8, random.Random(sum(shape)))
    check_points(t, points)


def test_accumulators_start_from_zero_registers_when_r0_is_empty():
    """With every R0 factor 1, the reduction's init sits inside the S2 loops as one vector store per
    16 lanes, which LLVM forwards into the register tile: no pass of zero stores over the S2 block."""
    t = task(64, 64, 64, num_cores=1)
    space = SearchSpace(t)
    point = space.complete({"k0": 1, "acc_level": 2, "i2": 2, "j2": 2}, random.Random(0))
    script = space.apply(point).script()
    s2_loop, init = script.index("i_2 in T.grid"), script.index('T.sblock("C_init")')
    assert s2_loop < init and "T.vectorized(16)" in script[s2_loop:init]
    asm = tvm_compat.assembly(tvm_compat.build(space.apply(point), t.target.tvm_target(), t.target.pass_config()))
    assert "vpxor" in asm
