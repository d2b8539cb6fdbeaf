"""Tiny ONNX graphs built with onnx.helper (fp32 and QDQ int8), shapes the dlboost micro-kernel takes."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def fp32_model(path) -> None:
    """x[N,16,8,8] -> conv a (16->16, 3x3) -> relu -> conv b (same shape as a) -> grouped conv (group 2)
    -> flatten -> Gemm transB (dense 1024->16) -> MatMul (gemm 16->32). Batch left free ("N")."""
    rng = np.random.default_rng(0)
    w = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"], name="relu_a"),
        helper.make_node("Conv", ["ar", "wb"], ["b"], name="conv_b", pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["b", "wg"], ["g"], name="conv_grouped", pads=[1, 1, 1, 1], group=2),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wd"], ["d"], name="fc", transB=1),
        helper.make_node("MatMul", ["d", "wm"], ["y"], name="proj"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 32])],
        [
            _init("wa", w(16, 16, 3, 3)),
            _init("wb", w(16, 16, 3, 3)),
            _init("wg", w(16, 8, 3, 3)),
            _init("wd", w(16, 1024)),
            _init("wm", w(16, 32)),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def qdq_model(path) -> None:
    """ONNX Runtime's QDQ format: x -> Q -> DQ -> Conv(DQ(w)) -> Q -> DQ -> MatMul(DQ(w2)) -> Q -> DQ."""
    rng = np.random.default_rng(0)
    scale, zero = _init("s", np.array(0.1, np.float32)), _init("z", np.array(0, np.uint8))
    wz = _init("wz", np.array(0, np.int8))
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["wq", "s", "wz"], ["wd"], name="dq_w"),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="qconv", pads=[0, 0, 0, 0]),
        helper.make_node("QuantizeLinear", ["c", "s", "z"], ["cq"], name="q_c"),
        helper.make_node("DequantizeLinear", ["cq", "s", "z"], ["cd"], name="dq_c"),
        helper.make_node("Reshape", ["cd", "shape"], ["r"], name="reshape"),
        helper.make_node("DequantizeLinear", ["mq", "s", "wz"], ["md"], name="dq_m"),
        helper.make_node("MatMul", ["r", "md"], ["y"], name="qmatmul"),
        helper.make_node("QuantizeLinear", ["y", "s", "z"], ["yq"], name="q_y"),
        helper.make_node("DequantizeLinear", ["yq", "s", "z"], ["yd"], name="dq_y"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 4, 4])],
        [helper.make_tensor_value_info("yd", TensorProto.FLOAT, [16, 16])],
        [
            scale,
            zero,
            wz,
            _init("wq", rng.integers(-8, 8, (32, 16, 1, 1)).astype(np.int8)),
            _init("mq", rng.integers(-8, 8, (32, 16)).astype(np.int8)),
            _init("shape", np.array([16, 32], np.int64)),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
