"""Tiny ONNX models built by the tests themselves (onnx.helper), fp32 and int8 QDQ (ONNX Runtime's quantize_static)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fp32_model(path: Path) -> Path:
    """x (1,3,8,8) -> Conv 3x3 pad 1 (32: 3 channels, padding under a nonzero zero point) -> Relu -> Conv 3x3 pad 1 (16) -> Relu -> GlobalAveragePool -> Flatten -> Gemm (16);
    t (1,4,32) -> MatMul (32x16): two inputs, two outputs."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    init = lambda name, *shape: numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
        helper.make_node("MatMul", ["t", "w4"], ["z"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8]), helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 16])],
        [init("w1", 32, 3, 3, 3), init("b1", 32), init("w2", 16, 32, 3, 3), init("b2", 16), init("w3", 16, 16), init("b3", 16), init("w4", 32, 16)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def attention_model(path: Path) -> Path:
    """t (2,8,32): softmax(t t^T) t -> LayerNormalization -> + t, the fp32 shape of a transformer's
    attention (batched matmul of two activations, row reductions, element-wise ops)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "tt"], ["s"]),
        helper.make_node("Softmax", ["s"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "t"], ["a"]),
        helper.make_node("LayerNormalization", ["a", "g", "b"], ["n"], axis=-1),
        helper.make_node("Add", ["n", "t"], ["y"]),
    ]
    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        nodes,
        "attention",
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 8, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8, 32])],
        [numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), n) for n in ("g", "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def quantize(fp32: Path, path: Path, samples: int = 8, int_inputs: bool = False) -> Path:
    """int8 QDQ (u8 activations, s8 per-channel weights) with random calibration data."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    rng = np.random.default_rng(1)

    class Reader(CalibrationDataReader):
        def __init__(self):
            draw = (lambda s: rng.integers(0, 1000, s)) if int_inputs else (lambda s: rng.standard_normal(s).astype(np.float32))
            self.data = iter([{n: draw(s) for n, s in shapes.items()} for _ in range(samples)])

        def get_next(self):
            return next(self.data, None)

    quantize_static(
        str(fp32), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    return path
