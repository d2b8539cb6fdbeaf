"""Property: any positive shape of every operator tunes on dlboost and amx, and every sampled point
computes the numpy reference exactly, though the micro-kernel divides none of the extents (lanes
not a multiple of 16, reductions not a multiple of 4, primes and 1s in every dimension)."""

import math
import random
import subprocess
import sys

import numpy as np
import pytest

from heron_core.library import load_library
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec
from heron_cpu_dlboost.cpu import host_cpu

CPU = host_cpu()
PARAMS = {
    "dlboost": {"microkernel": "vnni" if CPU.has_vnni else "generic"},
    "amx": {"microkernel": "amx", "mcpu": "sapphirerapids"} if CPU.has_amx else {"microkernel": "generic"},
}
SMALL = (1, 2, 3, 5, 7, 13, 17, 19)  # 1s, primes, nothing the 16 x 4 micro-kernel divides


def random_shape(op: str, rng: random.Random) -> dict[str, int]:
    """A small random shape of ``op`` drawn from SMALL (kernel taps and strides kept small)."""
    d = lambda: rng.choice(SMALL)  # noqa: E731
    conv = {"N": rng.choice((1, 2)), "C": d(), "K": d(), "stride": rng.choice((1, 2))}
    if op in ("gemm", "dense"):
        return {"M": d(), "K": d(), "N": d()}
    if op == "bmm":
        return {"batch": rng.choice((1, 3)), "M": d(), "K": d(), "N": d()}
    if op == "gemv":
        return {"M": d(), "K": d()}
    if op == "scan":
        return {"M": d(), "N": d(), "K": d()}
    if op == "conv1d":
        return {
            **conv,
            "W": rng.choice((5, 7, 11)),
            "S": rng.choice((1, 3)),
            "pad": rng.choice((0, 1)),
            "dilation": rng.choice((1, 2)),
        }
    if op in ("conv2d", "dil"):
        shape = {**conv, "H": rng.choice((5, 7)), "W": rng.choice((5, 7)), "R": rng.choice((1, 3)), "S": rng.choice((1, 3))}
        shape["pad"] = rng.choice((0, 1))
        if op == "dil":
            shape.pop("stride")
            shape["dilation"] = 2
        return shape
    if op == "conv3d":
        return {**conv, "D": 3, "H": 5, "W": 5, "T": rng.choice((1, 3)), "R": 3, "S": 3, "pad": 1}
    if op == "t2d":
        return {**conv, "H": rng.choice((3, 5)), "W": rng.choice((3, 5)), "R": 3, "S": 3, "pad": 1, "output_pad": 0}
    raise ValueError(op)


OPS = ["gemm", "dense", "bmm", "gemv", "scan", "conv1d", "conv2d", "conv3d", "dil", "t2d"]
CASES = [("dlboost", op) for op in OPS] + [("amx", op) for op in OPS if op != "gemv"]  # amx refuses gemv (no row axis)


@pytest.mark.parametrize("target,op", CASES)
def test_random_awkward_shapes_are_exact(target, op, check_points):
    rng = random.Random(f"{target}/{op}")
    ref = PluginRef(name=target, params={"num_cores": 2, **PARAMS[target]})
    for _ in range(2):  # two shapes, one point each: a point's build is what takes the time
        task = Task(TaskSpec(target=ref, op=op, shape=random_shape(op, rng), in_dtype="int8", out_dtype="int32"))
        check_points(task, SearchSpace(task).sample(1, rng))


@pytest.mark.parametrize(
    "op,shape,extents",
    [
        ("dense", {"M": 197, "K": 6, "N": 20}, {"i": 198, "j": 32, "k": 8}),  # lanes to 32, dot to 8, the prime row to 198
        ("gemm", {"M": 1, "K": 3, "N": 1}, {"i": 1, "j": 16, "k": 4}),  # 1 stays 1
    ],
)
def test_kernel_extents_are_padded_for_the_micro_kernel_and_balanced_tiles(op, shape, extents):
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **PARAMS["dlboost"]})
    task = Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="int8", out_dtype="int32"))
    lay = task.context.layout(task)
    assert {a.name: a.extent * a.inner for a in lay.axes} == extents
    assert task.op.op_count() == 2 * shape["M"] * shape["K"] * shape["N"]  # logical work, not the padded


def test_padded_kernel_exports_and_takes_logical_shapes(tmp_path):
    """tune -> export -> load: the caller passes the operator's logical arrays (the library zero-pads the
    weight as it packs it) and gets the logical output."""
    db, lib = tmp_path / "records.db", tmp_path / "lib"
    mk = PARAMS["dlboost"]["microkernel"]
    for args in (
        f"tune --target dlboost --target-param microkernel={mk} --op dense --shape M=5,K=7,N=19 --trials 2 --quiet",
        f"export {lib} --op dense",
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "heron_core.cli", *args.split(), "--db", str(db)], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    kernel = load_library(lib).find("dense")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    b = rng.integers(-128, 128, (19, 7), dtype=np.int8)
    expected = a.astype(np.int32) @ b.astype(np.int32).T
    np.testing.assert_array_equal(kernel(a, b), expected)
    np.testing.assert_array_equal(kernel(a, kernel.pack("B", b)), expected)


def test_row_extent_is_a_knob_and_a_padded_choice_is_exact(check_points):
    """A row count with no register-tile divisor (37) may be padded to several extents: the ``row_extent`` knob
    (the CP-SAT rules bound its tiles); a point on a choice other than the default computes the logical output
    exactly (the default one is what the random shapes above run)."""
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **PARAMS["dlboost"]})
    task = Task(TaskSpec(target=ref, op="dense", shape={"M": 37, "K": 8, "N": 16}, in_dtype="int8", out_dtype="int32"))
    space = SearchSpace(task)
    assert space.knobs["row_extent"].values == [38, 39, 40]
    rng = random.Random(0)
    points = [space.complete({"row_extent": 40}, rng)]
    assert all(p is not None and p["i0"] * p["i1"] * p["i2"] * p["i3"] == p["row_extent"] for p in points)
    old = {k: v for k, v in points[0].items() if k != "row_extent"}  # recorded before the knob existed
    assert space.upgraded(old)["row_extent"] == 38
    check_points(task, points)


@pytest.mark.parametrize(
    "op,shape,lanes",
    [
        ("gemm", {"M": 5, "K": 20, "N": 20}, 4),  # 4 lanes x 4 chunks, 4 reduction elements left to the tail
        ("dense", {"M": 37, "K": 18, "N": 24}, 8),  # rows padded, the data packed (K to 20): 8 lanes x 2 chunks
        ("bmm", {"batch": 2, "M": 3, "K": 36, "N": 17}, 2),  # 1 lane run as 2 x 8 chunks, a tail of 4
        ("gemv", {"M": 36, "K": 24}, 4),  # no rows: 4 lanes x 4 chunks, a tail of 2 groups
    ],
)
def test_lane_remainder_is_a_knob_and_exact(op, shape, lanes, check_points):
    """Output lanes beyond a multiple of 16 may be computed by a remainder micro-kernel instead of the 16-lane one:
    the ``lane_remainder`` knob; its points compute the logical output exactly, and a point recorded before the knob
    existed resumes as before (0)."""
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **PARAMS["dlboost"]})
    task = Task(TaskSpec(target=ref, op=op, shape=shape, in_dtype="int8", out_dtype="int32"))
    space = SearchSpace(task)
    assert space.knobs["lane_remainder"].values == [0, 1]
    assert task.context.compute(task, {"lane_remainder": 1}).remainder.lanes == lanes
    rng = random.Random(0)
    points = [space.complete({"lane_remainder": 1}, rng), space.complete({"lane_remainder": 0}, rng)]
    assert points[0] is not None and points[1] is not None
    old = {k: v for k, v in points[1].items() if k != "lane_remainder"}
    assert space.upgraded(old) == points[1] and space.is_valid(space.upgraded(old))
    n = task.op.output.shape[-1]
    for point, blocks in zip(points, (n // 16, -(-n // 16))):  # with the remainder: whole blocks only
        (lane,) = [ax for ax in task.context.layout(task, point).axes if ax.inner == 16]
        assert lane.extent == blocks == math.prod(point[f"{lane.name}{i}"] for i in range(lane.levels))
    check_points(task, points)


def test_lane_remainder_leaves_no_output_copy():
    """With the remainder, the compute runs on the logical lanes and writes the output itself (no padded buffer,
    no write-back pass): the last lanes are a copy of the remainder's sums inside the kernel."""
    ref = PluginRef(name="dlboost", params={"num_cores": 1, **PARAMS["dlboost"]})
    task = Task(TaskSpec(target=ref, op="gemm", shape={"M": 100, "K": 100, "N": 100}, in_dtype="int8", out_dtype="int32"))
    assert task.context.compute(task, {"lane_remainder": 0}).write_back is not None
    compute = task.context.compute(task, {"lane_remainder": 1})
    assert compute.write_back is None and tuple(compute.out.shape) == (100, 100)
    point = SearchSpace(task).complete({"lane_remainder": 1, "acc_level": 2}, random.Random(0))
    script = task.context.apply(task, point).script()
    assert "C_padded" not in script and "T.vectorized(96, 100)" in script


def test_lane_remainder_is_offered_only_where_it_saves_calls():
    ref = PluginRef(name="dlboost", params={"num_cores": 2, **PARAMS["dlboost"]})
    # 32 lanes divide; 29 leave 13 (no fewer calls than padding); K=8 is shallower than one 4-lane call (4 x 16)
    for shape in ({"M": 4, "K": 64, "N": 32}, {"M": 4, "K": 64, "N": 29}, {"M": 4, "K": 8, "N": 20}):
        task = Task(TaskSpec(target=ref, op="dense", shape=shape, in_dtype="int8", out_dtype="int32"))
        assert "lane_remainder" not in SearchSpace(task).knobs
