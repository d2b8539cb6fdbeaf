"""ONNX model -> Network: every Conv, ConvTranspose, MatMul and Gemm (and their int8 forms:
QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger, and float ones between DequantizeLinear
and QuantizeLinear nodes, ONNX Runtime's QDQ format) as a Heron operator with its shape, from
``onnx.shape_inference``; every other node listed as unmapped, with why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import onnx
from onnx import helper, shape_inference

from heron_core.errors import ConfigError, HeronError
from heron_core.network import Found, Frontend, Network, Precision, build_network
from heron_core.registry import registry

CONV_OPS = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
CONV_FIELDS = {1: (("W",), ("S",)), 2: (("H", "W"), ("R", "S")), 3: (("D", "H", "W"), ("T", "R", "S"))}
QDQ = ("QuantizeLinear", "DequantizeLinear")
RESHAPES = {"Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze"}  # seen through on the way to a DequantizeLinear
# the data and weight inputs of each mapped node type
OPERANDS = {
    "Conv": (0, 1),
    "ConvTranspose": (0, 1),
    "MatMul": (0, 1),
    "Gemm": (0, 1),
    "QLinearConv": (0, 3),
    "QLinearMatMul": (0, 3),
    "ConvInteger": (0, 1),
    "MatMulInteger": (0, 1),
}
INT8_FORMS = {"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"}
OTHER = "not a tensor contraction (runs outside Heron's kernels)"


class Unmappable(Exception):
    """A contraction node with no Heron operator (yet): the message says why."""


@dataclass
class Graph:
    """A shape-inferred graph with the lookups the mapping needs."""

    model: onnx.ModelProto
    shapes: dict[str, list[int | str]] = field(default_factory=dict)
    constants: set[str] = field(default_factory=set)
    producer: dict[str, onnx.NodeProto] = field(default_factory=dict)
    consumers: dict[str, list[onnx.NodeProto]] = field(default_factory=dict)

    @classmethod
    def of(cls, model: onnx.ModelProto) -> "Graph":
        g = cls(model)
        graph = model.graph
        for vi in [*graph.input, *graph.value_info, *graph.output]:
            t = vi.type.tensor_type
            if t.HasField("shape"):
                g.shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        for init in graph.initializer:
            g.shapes[init.name] = list(init.dims)
            g.constants.add(init.name)
        for node in graph.node:
            if node.op_type == "Constant":
                g.constants.update(node.output)
            for name in node.output:
                g.producer[name] = node
            for name in node.input:
                g.consumers.setdefault(name, []).append(node)
        return g

    def shape(self, name: str) -> list[int]:
        dims = self.shapes.get(name)
        if dims is None or not all(isinstance(d, int) and d > 0 for d in dims):
            raise Unmappable("an operand's shape is unknown after shape inference")
        return dims


def node_name(node: onnx.NodeProto) -> str:
    return node.name or node.output[0]


def attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def read_model(path: str, options: dict[str, int]) -> tuple[onnx.ModelProto, int | None]:
    """Load ``path`` (a broken file -> ConfigError), fix its free input dimensions (a dimension named
    in ``options``, else the leading one to ``batch``, default 1), infer shapes. Returns the model
    and the batch size given to a free dimension (None: the model fixes its batch)."""
    try:
        model = onnx.load(path, load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # protobuf DecodeError, ValidationError, OSError...
        raise ConfigError(
            f"{path} is not a readable ONNX model: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    batch, used = options.get("batch", 1), None
    unknown = sorted(set(options) - {"batch"} - {d.dim_param for i in model.graph.input for d in i.type.tensor_type.shape.dim})
    if unknown:
        raise ConfigError(f"{path}: no input dimension named {', '.join(unknown)} (options: batch, or a named input dimension)")
    initializers = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in initializers:
            continue
        for i, dim in enumerate(inp.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                continue
            if dim.dim_param in options:
                dim.dim_value = options[dim.dim_param]
            elif i == 0:
                dim.dim_value = used = batch
            else:
                raise ConfigError(
                    f"{path}: input '{inp.name}' dimension {i} ('{dim.dim_param}') is not fixed: pass {dim.dim_param or 'it'}=N"
                )
    try:
        inferred = shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise ConfigError(f"{path}: ONNX shape inference failed: {exc}") from None
    return symbolic_shapes(model) if has_free_dims(inferred) else inferred, used


def has_free_dims(model: onnx.ModelProto) -> bool:
    return any(not d.HasField("dim_value") for vi in model.graph.value_info for d in vi.type.tensor_type.shape.dim)


def symbolic_shapes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Shapes that ONNX's inference leaves symbolic (reshapes to computed shapes, as exported
    transformers have) resolved by ONNX Runtime's symbolic shape inference, where it is installed."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference
    except ImportError:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    try:
        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # it gives up on some graphs; ONNX's own result then stands
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)


def _one(values: list[int], what: str) -> int:
    if len(set(values)) != 1:
        raise Unmappable(f"{what} {values} differ per dimension (Heron's convolutions take one value)")
    return values[0]


def _conv_pads(a: dict, x: list[int], w: list[int], strides: list[int], dilations: list[int]) -> int:
    rank = len(x) - 2
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, r, s, d in zip(x[2:], w[2:], strides, dilations):
            total = max((math.ceil(n / s) - 1) * s + (r - 1) * d + 1 - n, 0)
            if total % 2:
                raise Unmappable(f"auto_pad {auto} pads unevenly ({total})")
            pads.append(total // 2)
        return _one(pads, "pads")
    if auto == "VALID":
        return 0
    pads = list(a.get("pads", [0] * 2 * rank))
    if pads[:rank] != pads[rank:]:
        raise Unmappable(f"asymmetric pads {pads}")
    return _one(pads[:rank], "pads")


def map_conv(g: Graph, node: onnx.NodeProto, data: str, weight: str) -> tuple[str, dict[str, int]]:
    x, w = g.shape(data), g.shape(weight)
    rank = len(x) - 2
    if rank not in CONV_OPS:
        raise Unmappable(f"{rank}-D convolution (Heron has 1-D, 2-D and 3-D)")
    a = attrs(node)
    strides = list(a.get("strides", [1] * rank))
    dilations = list(a.get("dilations", [1] * rank))
    group = int(a.get("group", 1))
    spatial, kernel = CONV_FIELDS[rank]
    op = CONV_OPS[rank]
    shape = {"N": x[0], "C": x[1], **dict(zip(spatial, x[2:])), "K": w[0], **dict(zip(kernel, w[2:]))}
    shape.update(
        stride=_one(strides, "strides"), pad=_conv_pads(a, x, w, strides, dilations), dilation=_one(dilations, "dilations")
    )
    if group != 1:
        if "groups" not in registry().get("operator", op).factory.Shape.model_fields:
            kind = "depthwise" if group == x[1] else "grouped"
            raise Unmappable(f"{kind} convolution: operator {op} has no groups parameter yet")
        shape["groups"] = group
    return op, shape


def map_conv_transpose(g: Graph, node: onnx.NodeProto, data: str, weight: str) -> tuple[str, dict[str, int]]:
    x, w = g.shape(data), g.shape(weight)
    if len(x) != 4:
        raise Unmappable(f"{len(x) - 2}-D transposed convolution (Heron has t2d, 2-D)")
    a = attrs(node)
    if int(a.get("group", 1)) != 1:
        raise Unmappable(f"grouped transposed convolution (group={a['group']})")
    if any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Unmappable(f"dilated transposed convolution {list(a['dilations'])}")
    if "output_shape" in a:
        raise Unmappable("output_shape given instead of pads")
    pads = list(a.get("pads", [0] * 4))
    if pads[:2] != pads[2:]:
        raise Unmappable(f"asymmetric pads {pads}")
    strides = list(a.get("strides", [1, 1]))
    out_pad = list(a.get("output_padding", [0, 0]))
    # ONNX ConvTranspose weights are (C, K/group, R, S): t2d's C,K,R,S
    shape = {"N": x[0], "C": x[1], "H": x[2], "W": x[3], "K": w[1], "R": w[2], "S": w[3]}
    shape.update(stride=_one(strides, "strides"), pad=_one(pads[:2], "pads"), output_pad=_one(out_pad, "output_padding"))
    return "t2d", shape


def map_matmul(g: Graph, node: onnx.NodeProto, a_name: str, b_name: str) -> tuple[str, dict[str, int]]:
    a, b = g.shape(a_name), g.shape(b_name)
    if len(a) < 2 or len(b) < 2:
        raise Unmappable(f"matrix-vector product (shapes {a} x {b})")
    m, k, n = math.prod(a[:-1]), a[-1], b[-1]
    if len(b) == 2:  # a 2-D right operand (a weight): the leading dimensions fold into M
        return "gemm", {"M": m, "K": k, "N": n}
    lead_a, lead_b = a[:-2], b[:-2]
    if lead_a != lead_b:
        raise Unmappable(f"broadcast batched product ({a} x {b})")
    return "bmm", {"batch": math.prod(lead_a), "M": a[-2], "K": k, "N": n}


def map_gemm(g: Graph, node: onnx.NodeProto, a_name: str, b_name: str) -> tuple[str, dict[str, int]]:
    a, b = g.shape(a_name), g.shape(b_name)
    at = attrs(node)
    if at.get("transA", 0):
        raise Unmappable("transA=1 (a transposed activation)")
    if at.get("transB", 0):  # B is (N, K): a linear layer's weight, A · Bᵀ
        return "dense", {"M": a[0], "K": a[1], "N": b[0]}
    return "gemm", {"M": a[0], "K": a[1], "N": b[1]}


MAPPERS = {
    "Conv": map_conv,
    "ConvInteger": map_conv,
    "QLinearConv": map_conv,
    "ConvTranspose": map_conv_transpose,
    "MatMul": map_matmul,
    "MatMulInteger": map_matmul,
    "QLinearMatMul": map_matmul,
    "Gemm": map_gemm,
}


def qdq_inputs(g: Graph, node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    """The DequantizeLinear nodes feeding a float contraction's data and weight, if both are
    (a QDQ int8 layer), else None."""
    dq = []
    for i in OPERANDS[node.op_type]:
        p = g.producer.get(node.input[i])
        while p is not None and p.op_type in RESHAPES:
            p = g.producer.get(p.input[0])
        if p is None or p.op_type != "DequantizeLinear":
            return None
        dq.append(p)
    return dq


def fused_products(model: onnx.ModelProto) -> dict[int, object]:
    """The QDQ products ``heron build`` runs as one kernel with its epilogue (bias, ReLU, requantization),
    by the index of their contraction node: tuned as such, their records are the ones the build finds."""
    from heron_core.build import find_products

    try:
        return {p.nodes[-1]: p for p in find_products(model)}
    except (ImportError, HeronError):  # shapes only ONNX Runtime knows, and no ONNX Runtime: plain int8 layers
        return {}


def import_graph(model: onnx.ModelProto, name: str, source: str) -> Network:
    g = Graph.of(model)
    found: list[Found] = []
    unmapped: list[tuple[str, str, str]] = []
    absorbed: set[int] = set()  # ids of Q/DQ nodes that belong to a QDQ int8 layer
    nodes = list(g.model.graph.node)
    fused = fused_products(model) if any(n.op_type == "QuantizeLinear" for n in nodes) else {}
    for index, node in enumerate(nodes):
        if node.op_type not in MAPPERS:
            continue
        product = fused.get(index)
        if product is not None:
            absorbed.update(id(nodes[i]) for i in product.nodes)
            absorbed.update(id(p) for p in qdq_inputs(g, node) or [])
            if len(node.input) > 2 and node.input[2] in g.producer:
                absorbed.add(id(g.producer[node.input[2]]))
            found.append(Found(node_name(node), product.op, product.shape, "int8", product.out_dtype))
            continue
        precision: Precision = "int8" if node.op_type in INT8_FORMS else "float"
        if node.op_type not in INT8_FORMS:
            dq = qdq_inputs(g, node)
            if dq:
                precision = "int8"
                absorbed.update(id(p) for p in dq)
                absorbed.update(id(c) for c in g.consumers.get(node.output[0], []) if c.op_type == "QuantizeLinear")
                if len(node.input) > 2 and node.input[2] in g.producer:  # a Conv's bias, dequantized
                    absorbed.add(id(g.producer[node.input[2]]))
        data, weight = (node.input[i] for i in OPERANDS[node.op_type])
        try:
            op, shape = MAPPERS[node.op_type](g, node, data, weight)
        except Unmappable as exc:
            unmapped.append((node_name(node), node.op_type, str(exc)))
            continue
        found.append(Found(node_name(node), op, shape, precision))
    for node in g.model.graph.node:
        if node.op_type in MAPPERS or id(node) in absorbed:
            continue
        reason = {"Constant": "a constant"}.get(node.op_type, OTHER)
        if node.op_type in QDQ:
            reason = "quantizes or dequantizes outside a quantized layer"
        unmapped.append((node_name(node), node.op_type, reason))
    return build_network(name, source, "onnx", found, unmapped)


class OnnxFrontend(Frontend):
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    def load(self, source: str, options: dict[str, int]) -> Network:
        model, batch = read_model(source, options)
        given = {**({"batch": batch} if batch else {}), **{k: v for k, v in options.items() if k != "batch"}}
        label = ",".join(f"{k}={v}" for k, v in given.items())
        return import_graph(model, f"{Path(source).stem}:{label}" if label else Path(source).stem, source)
