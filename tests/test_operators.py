"""Each operator's numpy reference against its definition written as plain loops, on tiny shapes."""

import itertools

import numpy as np
import pytest

from heron_core import cli
from heron_core.config import parse_shape
from heron_core.errors import ConfigError
from heron_core.registry import registry
from heron_core.task import PluginRef, Task, TaskSpec


def op(name, **shape):
    cls = registry().get("operator", name).factory
    return cls(cls.Shape.model_validate(parse_shape(cls, shape)), "int8", "int32")


def naive(o, a) -> np.ndarray:
    """The mathematical definition, element by element."""
    s, out = o.shape, np.zeros(o.output.shape, np.int64)
    if o.name in ("gemm", "dense", "bmm", "gemv", "scan"):
        for idx in np.ndindex(out.shape):
            if o.name == "gemm":
                out[idx] = sum(int(a["A"][idx[0], k]) * int(a["B"][k, idx[1]]) for k in range(s.K))
            elif o.name == "dense":
                out[idx] = sum(int(a["A"][idx[0], k]) * int(a["B"][idx[1], k]) for k in range(s.K))
            elif o.name == "bmm":
                b, i, j = idx
                out[idx] = sum(int(a["A"][b, i, k]) * int(a["B"][b, k, j]) for k in range(s.K))
            elif o.name == "gemv":
                out[idx] = sum(int(a["W"][idx[0], k]) * int(a["x"][k]) for k in range(s.K))
            else:
                m, n = idx
                out[idx] = sum(int(a["A"][m, k]) for k in range(min(n, s.K - 1) + 1))
        return out
    x, w = a["x"].astype(np.int64), a["w"].astype(np.int64)
    if o.name == "t2d":  # scatter every input element through the kernel
        for n, c, h, ww in np.ndindex(x.shape):
            for k, r, q in itertools.product(range(s.K), range(s.R), range(s.S)):
                y, z = h * s.stride + r - s.pad, ww * s.stride + q - s.pad
                if 0 <= y < out.shape[2] and 0 <= z < out.shape[3]:
                    out[n, k, y, z] += x[n, c, h, ww] * w[c, k, r, q]
        return out
    kernel = w.shape[2:]
    for idx in np.ndindex(out.shape):
        n, k, pos = idx[0], idx[1], idx[2:]
        total = 0
        for c in range(s.C):
            for r in itertools.product(*(range(e) for e in kernel)):
                src = [p * s.stride + ri * s.dilation - s.pad for p, ri in zip(pos, r)]
                if all(0 <= v < e for v, e in zip(src, x.shape[2:])):
                    total += x[(n, c, *src)] * w[(k, c, *r)]
        out[idx] = total
    return out


TINY = {
    "gemm": {"M": 3, "K": 5, "N": 4},
    "dense": {"M": 3, "K": 5, "N": 4},
    "bmm": {"batch": 2, "M": 3, "K": 5, "N": 4},
    "gemv": {"M": 6, "K": 5},
    "scan": {"M": 3, "N": 9, "K": 6},
    "conv1d": {"N": 2, "C": 3, "W": 9, "K": 4, "S": 3, "stride": 2, "pad": 2, "dilation": 2},
    "conv2d": {"N": 1, "C": 3, "H": 6, "W": 7, "K": 2, "R": 3, "S": 2, "stride": 2, "pad": 1},
    "conv3d": {"N": 1, "C": 2, "D": 4, "H": 5, "W": 4, "K": 3, "T": 2, "R": 3, "S": 3, "stride": 1, "pad": 1},
    "dil": {"N": 1, "C": 2, "H": 7, "W": 7, "K": 3, "R": 3, "S": 3, "pad": 1},
    "t2d": {"N": 1, "C": 3, "H": 4, "W": 3, "K": 2, "R": 3, "S": 3, "stride": 2, "pad": 1, "output_pad": 1},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_reference_matches_the_definition(name):
    o = op(name, **TINY[name])
    arrays = o.random_inputs(seed=1)
    np.testing.assert_array_equal(o.reference(arrays), naive(o, arrays))
    assert o.reference(arrays).shape == o.output.shape and o.op_count() > 0


def test_t2d_counts_only_the_products_that_land_in_the_output():
    o = op("t2d", **TINY["t2d"])
    s, (oh, ow) = o.shape, o.output.shape[2:]
    landed = sum(
        0 <= h * s.stride + r - s.pad < oh and 0 <= w * s.stride + q - s.pad < ow
        for h, w, r, q in itertools.product(range(s.H), range(s.W), range(s.R), range(s.S))
    )
    assert o.op_count() == 2 * s.N * s.K * s.C * landed < 2 * s.N * s.K * s.C * s.H * s.W * s.R * s.S


CONVOLUTIONS = ["conv1d", "conv2d", "conv3d", "dil", "t2d"]


@pytest.mark.parametrize("name", CONVOLUTIONS)
def test_channels_last_is_the_same_convolution_stored_channels_last(name):
    first, last = op(name, **TINY[name]), op(name, **TINY[name], channels_last=1)
    arrays = first.random_inputs(seed=2)
    moved = {**arrays, "x": np.ascontiguousarray(np.moveaxis(arrays["x"], 1, -1))}
    assert last.tensor("x").shape == moved["x"].shape and last.output.shape == np.moveaxis(first.reference(arrays), 1, -1).shape
    np.testing.assert_array_equal(last.reference(moved), np.moveaxis(first.reference(arrays), 1, -1))
    assert last.op_count() == first.op_count()
    # the flag shows in the label only when set: earlier records keep their workload keys
    assert "channels_last" not in first.shape_label() and last.shape_label().endswith(",channels_last=1")


def test_presets_and_the_original_names_are_accepted():
    cls = registry().get("operator", "conv2d").factory
    assert parse_shape(cls, "C2D4")["stride"] == 2
    shape = parse_shape(cls, {"N": 1, "CI": 64, "CO": 32, "H": 8, "W": 8, "KH": 1, "KW": 1, "padding": 0})
    assert shape == {"N": 1, "C": 64, "K": 32, "H": 8, "W": 8, "R": 1, "S": 1, "pad": 0}
    assert cls.Shape.model_validate(parse_shape(cls, [1, 16, 8, 8, 32, 3, 3])).pad == 0  # left out: the field's default
    with pytest.raises(ConfigError, match="no shape preset 'C9'.*C2D1"):
        parse_shape(cls, "C9")
    # a preset with named overrides (aliases included), from a config file or `--shape C2D1,channels_last=1`
    shape = parse_shape(cls, cli.parse_shape("C2D1, channels_last=1,padding=2"))
    assert shape == {**cls.presets["C2D1"], "channels_last": 1, "pad": 2}
    with pytest.raises(ConfigError, match="NAME=INT overrides"):
        parse_shape(cls, "C2D1,3")
    with pytest.raises(ConfigError, match="no shape parameter depth"):
        parse_shape(cls, "C2D1,depth=2")


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("conv2d", {"H": 2, "W": 2, "R": 3, "S": 3, "pad": 0}, "output would be empty"),
        ("t2d", {"R": 3, "S": 3, "pad": 3}, "pad .3. must be smaller than the kernel"),
        ("t2d", {"stride": 1, "output_pad": 1}, "output_pad .1. must be smaller than the stride"),
    ],
)
def test_impossible_shapes_get_one_clear_message(name, shape, message):
    cls = registry().get("operator", name).factory
    spec = TaskSpec(
        target=PluginRef(name="dlboost", params={"microkernel": "generic"}),
        op=name,
        shape={**cls.default_shape, **shape},
        in_dtype="int8",
        out_dtype="int32",
    )
    with pytest.raises(ConfigError, match=message):
        Task(spec)


def test_a_constant_is_the_same_computed_in_a_kernel_or_as_an_array():
    from tvm import te

    o = op("scan", **TINY["scan"])
    (mask,) = o.constants
    tensor = te.compute(mask.shape, lambda *i: o.constant(mask.name, *i))
    import tvm

    from heron_core import tvm_compat

    exe = tvm_compat.build(tvm.IRModule({"main": te.create_prim_func([tensor])}), {"kind": "llvm"})
    (result,) = tvm_compat.to_device([np.zeros(mask.shape, mask.dtype)], tvm_compat.device("cpu"))
    exe.jit()["main"](result)
    np.testing.assert_array_equal(result.numpy(), o.constant_value(mask.name))
