"""Target ``amx``: codegen is checked on any x86 machine (the assembly of sampled points holds the AMX
instructions), schedules are checked for correctness everywhere with the generic micro-kernel,
and the AMX kernels themselves run only where the CPU has AMX."""

import random
import re
import subprocess
import sys

import numpy as np
import pytest

from heron_core import process, tvm_compat
from heron_core.errors import TargetUnavailable
from heron_core.layout import BlockedLayout
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost import amx_intrin
from heron_cpu_dlboost.amx_context import STREAM_BYTES
from heron_cpu_dlboost.cpu import CPUInfo, host_cpu

HAS_AMX = {"amx_tile", "amx_int8", "amx_bf16"} <= host_cpu().flags
NO_AMX = "this CPU has no AMX (amx_tile/amx_int8/amx_bf16 not in /proc/cpuinfo): AMX kernels cannot run here"
OUT = {"int8": "int32", "bfloat16": "float32"}
CONV = {"N": 1, "C": 64, "H": 8, "W": 8, "K": 32, "R": 3, "S": 3, "stride": 1, "pad": 1}
INT8_CASES = [  # one int8 case per operator the target supports
    ("gemm", {"M": 64, "K": 256, "N": 64}, "int8"),
    ("dense", {"M": 32, "K": 128, "N": 48}, "int8"),
    ("bmm", {"batch": 2, "M": 32, "K": 64, "N": 32}, "int8"),
    ("conv2d", CONV, "int8"),
]


def task(op, shape, in_dtype="int8", **target) -> Task:
    ref = PluginRef(name="amx", params={"num_cores": 2, **target})
    return Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype=in_dtype, out_dtype=OUT[in_dtype]))


def test_tile_configuration_bytes():
    cfg = amx_intrin.TileShape("int8", rows=14, mt=1, nt=2, kc=4, tk=8).config_bytes()
    assert len(cfg) == 64 and cfg[0] == 1 and cfg[1] == 0  # palette 1, start row 0
    colsb = [cfg[16 + 2 * r] | cfg[17 + 2 * r] << 8 for r in range(8)]
    rows = cfg[48:56]
    # 2 accumulators (14 x 16 dwords), 1 A tile (14 rows x 8 groups of 4 bytes), 2 B tiles (8 rows x 64 bytes)
    assert colsb == [64, 64, 32, 64, 64, 0, 0, 0] and list(rows) == [14, 14, 14, 8, 8, 0, 0, 0]
    with pytest.raises(ValueError, match="tile registers"):
        amx_intrin.TileShape("int8", rows=16, mt=2, nt=3, kc=1, tk=16)


def test_weight_packed_with_other_dimensions_first():
    w = np.arange(32 * 8 * 3, dtype=np.int32).reshape(32, 8, 3)  # (lanes N, reduction K, other)
    p = BlockedLayout(reduce_dim=1, lane_dim=0, lanes=16, reduce=2, others_first=True).pack(w)
    assert p.shape == (3, 2, 4, 16, 2)
    for n, k, o in np.ndindex(w.shape):
        assert p[o, n // 16, k // 2, n % 16, k % 2] == w[n, k, o]


def test_refuses_a_cpu_without_amx():
    t = task("gemm", {"M": 32, "K": 64, "N": 32})
    t.target.cpu = CPUInfo("Zen 4", frozenset({"avx512f", "avx512_vnni"}), 2, 32768, 1 << 20)
    with pytest.raises(TargetUnavailable, match=r"needs Intel AMX.*Zen 4.*'amx_tile'.*microkernel=generic"):
        t.target.check_host()
    task("gemm", {"M": 32, "K": 64, "N": 32}, microkernel="generic").target.check_host()


@pytest.mark.skipif(HAS_AMX, reason="this CPU has AMX: the refusal cannot be seen here")
def test_cli_refuses_and_plugins_says_why():
    heron = [sys.executable, "-m", "heron_core.cli"]
    proc = subprocess.run([*heron, "tune", "--target", "amx", "--trials", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs Intel AMX" in proc.stderr
    listing = subprocess.run([*heron, "plugins"], capture_output=True, text=True, timeout=120).stdout
    assert re.search(r"│ target\s*│ amx\s*│.*│ no\s*│", listing), listing
    assert "target 'amx' cannot run on this machine: target 'amx' needs Intel AMX" in " ".join(listing.split())


def test_unknown_or_refused_process_setup_is_an_error():
    with pytest.raises(process.ProcessSetupError, match="unknown process set-up 'x'"):
        process.prepare(["x"])
    if not HAS_AMX:
        with pytest.raises(process.ProcessSetupError, match="refused this process the AMX tile registers"):
            process.request_amx_tiledata()


@pytest.mark.parametrize(
    "op,shape,in_dtype",
    [
        *INT8_CASES,
        ("gemm", {"M": 32, "K": 128, "N": 32}, "bfloat16"),
        ("conv2d", {**CONV, "R": 1, "S": 1, "stride": 2, "pad": 0}, "bfloat16"),
        ("conv2d", {**CONV, "channels_last": 1}, "int8"),
    ],
)
def test_sampled_points_compile_to_amx(op, shape, in_dtype):
    t = task(op, shape, in_dtype, mcpu="sapphirerapids")
    (point,) = SearchSpace(t).sample(1, random.Random(7))
    asm = tvm_compat.assembly(tvm_compat.build(t.context.apply(t, point), t.target.tvm_target()))
    dot = "tdpbusd" if in_dtype == "int8" else "tdpbf16ps"
    for ins in ("ldtilecfg", "tileloadd", dot, "tilestored"):
        assert re.search(rf"\b{ins}\b", asm), f"no {ins} in the assembly of {point}"
    # the tile configuration is loaded per parallel chunk, not per micro-kernel call
    assert len(re.findall(r"\bldtilecfg\b", asm)) < len(re.findall(rf"\b{dot}\b", asm))


def test_every_sampled_point_respects_the_tile_rules():
    t = task("gemm", {"M": 256, "K": 1024, "N": 128})
    l1 = t.target.l1_bytes
    for point in SearchSpace(t).sample(20, random.Random(3)):
        mt, nt = point["i3"], point["j3"]
        assert mt * nt + mt + nt <= amx_intrin.TILES
        assert mt * nt == 4 and point["k1"] >= 8  # the preferences this shape leaves room for
        assert point["i2"] * point["j2"] >= 4  # an S2 block of several calls (L1 reuse)
        f = t.context.features(t, point)
        # one call's operands fit L1, or the operand the innermost S2 loop reuses does, with room for the other's tiles,
        # or the call covers all of K (acc_zero: both operands may stream from L2)
        assert f["l1_bytes"] <= l1 or f["l1_reused_bytes"] + STREAM_BYTES <= l1 or (f["acc_zero"] and point["k0"] == 1)


def test_l1_rule_keeps_the_reused_operand():
    """16-step 2x2 calls (64 KiB of operands) fit a 48 KiB L1d only as the kept A (or B) K block plus streamed tiles."""
    partial = {"i3": 2, "j3": 2, "k1": 16, "lane_first_2": 0, "acc_zero": 0}
    shape = {"M": 1024, "K": 1024, "N": 1024}
    fits = SearchSpace(task("gemm", shape, l1_kib=48)).complete(partial, random.Random(0))
    assert fits is not None and fits["k1"] == 16
    assert SearchSpace(task("gemm", shape, l1_kib=32)).complete(partial, random.Random(0)) is None  # 32 KiB + 4 KiB > 32 KiB


@pytest.mark.parametrize(
    "op,shape,in_dtype",
    [
        ("gemm", {"M": 48, "K": 128, "N": 32}, "int8"),
        ("bmm", {"batch": 2, "M": 16, "K": 64, "N": 32}, "bfloat16"),
        ("conv2d", {**CONV, "H": 14, "W": 14, "R": 1, "S": 1, "stride": 2, "pad": 0}, "int8"),
        ("conv2d", {**CONV, "H": 6, "W": 6, "channels_last": 1}, "bfloat16"),
    ],
)
def test_generic_microkernel_schedules_are_correct(op, shape, in_dtype, check_points):
    """Property: every point of the space is a correct kernel (the same template, plain vector code)."""
    t = task(op, shape, in_dtype, microkernel="generic")
    check_points(t, SearchSpace(t).sample(3, random.Random(sum(shape.values()))))


@pytest.mark.skipif(not HAS_AMX, reason=NO_AMX)
@pytest.mark.parametrize(
    "op,shape,in_dtype",
    [
        *INT8_CASES,
        ("conv2d", {**CONV, "H": 14, "W": 14, "R": 1, "S": 1, "stride": 2, "pad": 0}, "int8"),
        ("gemm", {"M": 32, "K": 128, "N": 32}, "bfloat16"),
        ("conv2d", CONV, "bfloat16"),
    ],
)
def test_amx_kernels_are_correct(op, shape, in_dtype, check_points):
    t = task(op, shape, in_dtype)
    t.target.check_host()
    check_points(t, SearchSpace(t).sample(4, random.Random(1)))


@pytest.mark.skipif(not HAS_AMX, reason=NO_AMX)
def test_tile_packed_a_with_short_tile_rows_is_correct(check_points):
    """a_cache 3 where a K step is under 64 bytes (8 channels: tile rows of 8 bytes): the A tiles' row stride is
    the packing's row, not a whole 64-byte tile row (which read other rows' bytes)."""
    t = task("conv2d", {"N": 1, "C": 8, "H": 6, "W": 6, "K": 16, "R": 1, "S": 1, "channels_last": 1})
    space = SearchSpace(t)
    points = [space.complete({"a_cache": 3}, random.Random(s)) for s in range(3)]
    assert all(p is not None and t.context.tile_shape(t, p).tk * 4 < 64 for p in points)
    check_points(t, points)


def _legalized_allocations(mod) -> dict[str, str]:
    """Buffers the kernel allocates, with their dtypes, once TVM's bf16 compute legalization has run."""
    import tvm
    from tvm import s_tir, tirx

    S = s_tir.transform
    passes = [S.LowerInitBlock(), S.PlanAndUpdateBufferAllocationLocation(), S.ConvertBlocksToOpaque()]
    passes += [S.CompactBufferAllocation(), S.LowerMatchBuffer(), S.LowerOpaqueBlock()]
    passes += [tirx.transform.FlattenBuffer(), tirx.transform.BF16ComputeLegalize()]
    with tvm.target.Target({"kind": "llvm", "mcpu": "sapphirerapids"}):
        text = tvm.transform.Sequential(passes)(mod).script()
    return {name: dtype or "float32" for name, dtype in re.findall(r'(\w+) = T.alloc_buffer\(\(\d+,\),? ?"?(\w*)', text)}


def test_bf16_tiles_read_bf16_buffers():
    """Regression: TVM widens bf16 buffers of a kernel to f32 unless they are accessed through raw
    pointers; the tile loads must see the packed bf16 operands (bmm packs B, the A block is cached)."""
    t = task("bmm", {"batch": 2, "M": 32, "K": 64, "N": 32}, "bfloat16", mcpu="sapphirerapids")
    point = SearchSpace(t).complete({"a_cache": 1}, random.Random(0))
    allocs = _legalized_allocations(t.context.apply(t, point))
    assert allocs["B_pack"] == "bfloat16" and allocs["A_global"] == "bfloat16", allocs


def test_tile_configuration_is_loaded_once_per_parallel_chunk():
    t = task("gemm", {"M": 64, "K": 256, "N": 64}, mcpu="sapphirerapids")
    point = SearchSpace(t).sample(1, random.Random(2))[0]
    text = t.context.apply(t, point).script()
    parallel = re.search(r"for (\w+) in T.parallel\(", text)
    assert parallel and text.count("llvm.x86.ldtilecfg") == 1
    assert text.index("llvm.x86.ldtilecfg") > parallel.start()


@pytest.mark.parametrize("a_cache", [2, 3])
@pytest.mark.parametrize(
    "op,shape,in_dtype",
    [("gemm", {"M": 128, "K": 1024, "N": 64}, "int8"), ("bmm", {"batch": 2, "M": 32, "K": 128, "N": 32}, "bfloat16")],
)
def test_a_panel_copied_once_per_row_tile(op, shape, in_dtype, a_cache, check_points):
    """a_cache 2 / 3 (the A panel of an S1 row tile, all of K, copied ahead of the S1 lane loop; 3: packed tile
    by tile): correct with the generic micro-kernel, only with the lane loop inside the copy, and the copy
    outside every K block."""
    t = task(op, shape, in_dtype, microkernel="generic")
    space = SearchSpace(t)
    partial = {"a_cache": a_cache, "k0": 2} if op == "gemm" else {"a_cache": a_cache}  # the copy is outside K blocks
    points = [space.complete(partial, random.Random(s)) for s in range(3)]
    assert all(p is not None and p["lane_first_1"] == 0 for p in points)
    check_points(t, points)
    text = t.context.apply(t, points[0]).script()
    k0 = re.search(r"for [^\n]*\bk_0\b[^\n]* in ", text)
    assert k0 and text.index('T.sblock("A_global")') < k0.start(), text


def test_a_panel_fits_l2():
    t = task("gemm", {"M": 4096, "K": 4096, "N": 4096}, l1_kib=48, l2_kib=2048)
    space = SearchSpace(t)
    assert space.complete({"a_cache": 2, "i2": 8, "i3": 2}, random.Random(0)) is not None  # 256 rows x 4160 B
    assert space.complete({"a_cache": 2, "i2": 32, "i3": 2}, random.Random(0)) is None  # 1024 rows: 4 MiB


@pytest.mark.parametrize(
    "op,shape,in_dtype",
    [
        ("gemm", {"M": 64, "K": 512, "N": 64}, "int8"),
        ("bmm", {"batch": 2, "M": 32, "K": 128, "N": 32}, "bfloat16"),
        ("conv2d", {**CONV, "R": 1, "S": 1, "pad": 0}, "int8"),
    ],
)
def test_zero_start_calls_are_correct(op, shape, in_dtype, check_points):
    """acc_zero: the call covers all of K, starts its accumulators at zero and the init block is elided."""
    t = task(op, shape, in_dtype, microkernel="generic")
    space = SearchSpace(t)
    points = [space.complete({"acc_zero": 1, "acc_level": lvl}, random.Random(lvl)) for lvl in (0, 1)]
    points = [p for p in points if p is not None]
    assert points and all(p[f"{t.context.layout(t).dot}0"] == 1 for p in points)
    check_points(t, points)


def test_zero_start_needs_the_whole_reduction_in_one_call():
    assert SearchSpace(task("conv2d", CONV)).complete({"acc_zero": 1}, random.Random(0)) is None  # R x S loops
    t = task("gemm", {"M": 256, "K": 4096, "N": 256}, mcpu="sapphirerapids")
    point = SearchSpace(t).complete({"acc_zero": 1, "acc_level": 2, "a_cache": 2}, random.Random(0))
    assert point["k0"] == 1 and point["k1"] == 64  # 64 K steps per call: both operands stream from L2
    asm = tvm_compat.assembly(tvm_compat.build(t.context.apply(t, point), t.target.tvm_target()))
    calls = len(re.findall(r"\btilestored\b", asm)) // 4
    assert len(re.findall(r"\btilezero\b", asm)) == 4 * calls
    # a 2x2 step loads 2 A + 2 B tiles for its 4 tdpbusd: as many tile loads as products, none of C
    assert point["i3"] * point["j3"] == 4
    assert len(re.findall(r"\btileloadd\b", asm)) == len(re.findall(r"\btdpbusd\b", asm))


def test_tile_packed_a_loads_contiguous_tiles():
    t = task("gemm", {"M": 256, "K": 4096, "N": 256}, mcpu="sapphirerapids")
    point = SearchSpace(t).complete({"acc_zero": 1, "a_cache": 3}, random.Random(0))
    mod = t.context.apply(t, point)
    assert "A_global[v0 // 16, v1 // 64, v0 % 16, v1 % 64]" in mod.script()
    asm = tvm_compat.assembly(tvm_compat.build(mod, t.target.tvm_target()))
    assert re.search(r"\btdpbusd\b", asm) and re.search(r"\btilezero\b", asm)


def test_single_tile_calls_with_cached_operands_build():
    # One tile, one K step, A and C through caches, zero start: the C cache is first written after the A cache's
    # last read, so TVM 0.27's StorageRewrite reuses the uint8 A storage for the int32 C cache and then rejects its
    # own tvm_access_ptr (a build_error on the AMX machine); tvm_compat.build rebuilds without that pass.
    t = task("gemm", {"M": 64, "K": 64, "N": 64}, mcpu="sapphirerapids", num_cores=16)
    partial = {"i3": 1, "j3": 1, "k1": 1, "a_cache": 3, "acc_level": 1, "acc_zero": 1}
    point = SearchSpace(t).complete(partial, random.Random(0))
    asm = tvm_compat.assembly(tvm_compat.build(t.context.apply(t, point), t.target.tvm_target(), t.target.pass_config()))
    assert re.search(r"\btdpbusd\b", asm) and re.search(r"\btileloadd\b", asm)


def test_parallel_rule_gives_way_where_the_shape_cannot_split_evenly():
    # 14 x 14 x 64 outputs: at most 56 chunks, neither a multiple of 16 nor 4 per core; the space keeps
    # one chunk per core and settles for 2 per core instead of being empty (the default conv2d shape on 16 cores)
    t = task("conv2d", {**CONV, "H": 14, "W": 14, "K": 64}, num_cores=16)
    points = SearchSpace(t).sample(10, random.Random(0))
    chunks = [t.context.features(t, p)["parallel_chunks"] for p in points]
    assert len(points) == 10 and min(chunks) >= 32, chunks
