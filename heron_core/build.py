"""``heron build MODEL.onnx --db RECORDS -o OUT``: an ONNX model compiled with TVM Relax, its
quantized products running Heron's tuned kernels.

Route: the ONNX graph is rewritten before import. Every int8 QDQ product Heron can run,
``DequantizeLinear(x: u8) -> Conv | MatMul | Gemm (DequantizeLinear(w: s8 const), bias) [-> Relu]
-> QuantizeLinear``, whose workload has a record in the database, becomes one ``HeronKernel``
node; TVM's ONNX importer turns that node into ``R.call_dps_packed`` of the kernel (exported as
by ``heron export``), with the weight packed once here and passed as a constant, and the zero
points and scales folded into the kernel's epilogue (see heron_core.epilogue):

    bias'[c] = round(b[c] / (sx * sw[c])) - zx * sum(w[c])      scale[c] = float32(sx * sw[c] / sy)

Everything else is TVM's own lowering (``tvm.compile``'s CPU Relax pipeline: legalize, FuseOps, FuseTIR),
with CPU schedules from heron_core.graph_schedule for the fused PrimFuncs.
OUT holds model.so (the Relax executable), kernels/ (a Heron library) and model.json.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from heron_core.errors import ConfigError, HeronError

MODEL_FORMAT = 1
KERNEL_OP = "HeronKernel"
KERNEL_DOMAIN = "heron"
# --check's bound on ||heron - ort|| / ||ort|| per output: a few quantization steps of an int8 model
# (rounding ties and float32 order differ between ONNX Runtime's kernels and TVM's lowering)
CHECK_REL_L2 = 0.05
# ... or this many times ONNX Runtime's own spread (its optimized run against its run of the QDQ graph as
# written): in a deep int8 model one flipped rounding early on moves the output, and two correct int8
# runs differ by that much (BERT-base int8, random weights: 6.6%)
CHECK_SPREAD = 1.5


class ModelError(ConfigError):
    """A model file that cannot be read or compiled (exit status 2)."""


@dataclass
class Product:
    """One quantized product of the graph that a Heron kernel can compute."""

    nodes: list[int]  # indices of the ONNX nodes it replaces (ONNX Runtime leaves node names empty)
    x: str  # the u8 activation feeding it
    out: str  # the quantized output it produces
    op: str  # gemm | dense | conv2d
    shape: dict[str, int]
    out_dtype: str
    x_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    arrays: dict[str, np.ndarray] = field(repr=False)  # the kernel's weight and epilogue operands (logical layouts)
    workload_key: str = ""
    pre_pad: tuple[tuple[int, int], ...] | None = None  # padding of x by the graph (with its zero point) before the kernel
    pad_value: int = 0


def load_onnx(path: str | Path):
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # onnx raises several unrelated types for broken files
        raise ModelError(f"{path}: not a valid ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None


def find_products(model) -> list[Product]:
    """Every QDQ product of ``model`` that Heron's u8 x s8 kernels can compute, with its folded operands."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, int] = {}
    for n in graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    for o in graph.output:
        users[o.name] = users.get(o.name, 0) + 1
    shapes = _static_shapes(model)
    wanted = {n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    wanted |= {n.output[0] for n in graph.node if n.op_type in ("Conv", "MatMul", "Gemm", "Relu")}
    missing = sorted(wanted - shapes.keys() - inits.keys())
    if missing:
        shapes.update(_runtime_shapes(model, missing))
    index = {id(n): i for i, n in enumerate(graph.node)}
    found = []
    for q in graph.node:
        if q.op_type != "QuantizeLinear":
            continue
        product = _match(q, producer, users, inits, shapes, index)
        if product is not None:
            found.append(product)
    return found


def _static_shapes(model) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for v in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = v.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[v.name] = tuple(d.dim_value for d in dims)
    return shapes


def _runtime_shapes(model, names: list[str]) -> dict[str, tuple[int, ...]]:
    """Shapes ONNX's inference leaves symbolic (e.g. through a mask's Expand), from one run of
    ONNX Runtime on random inputs (the model's input shapes are static)."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    inputs = [
        {"name": i.name, "shape": list(_static_shapes(model).get(i.name, ())), "dtype": _dtype(i)}
        for i in model.graph.input
        if i.name not in {init.name for init in model.graph.initializer}
    ]
    return {n: tuple(v.shape) for n, v in zip(names, sess.run(names, random_feeds(inputs)))}


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _quant_params(node, inits) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, zero point) of a (De)QuantizeLinear node whose parameters are constants."""
    if node.input[1] not in inits or (len(node.input) > 2 and node.input[2] and node.input[2] not in inits):
        return None
    scale = inits[node.input[1]].astype(np.float32)
    zero = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else np.zeros((), np.uint8)
    return scale, zero


def _match(q, producer, users, inits, shapes, index) -> Product | None:
    qp = _quant_params(q, inits)
    if qp is None or qp[0].size != 1 or qp[1].dtype not in (np.uint8, np.int8):
        return None
    nodes = [index[id(q)]]
    prod, relu = producer.get(q.input[0]), False
    if prod is not None and prod.op_type == "Relu" and users.get(prod.output[0]) == 1:
        nodes.append(index[id(prod)])
        relu, prod = True, producer.get(prod.input[0])
    if prod is None or prod.op_type not in ("Conv", "MatMul", "Gemm") or users.get(prod.output[0]) != 1:
        return None
    dq_x, dq_w = producer.get(prod.input[0]), producer.get(prod.input[1])
    if dq_x is None or dq_w is None or dq_x.op_type != "DequantizeLinear" or dq_w.op_type != "DequantizeLinear":
        return None
    xp, wp = _quant_params(dq_x, inits), _quant_params(dq_w, inits)
    w = inits.get(dq_w.input[0])
    x_shape = shapes.get(dq_x.input[0])
    if xp is None or wp is None or w is None or x_shape is None or xp[1].dtype != np.uint8 or xp[0].size != 1:
        return None
    if w.dtype != np.int8 or np.any(wp[1] != 0):
        return None
    attrs = _attrs(prod)
    sx, zx = np.float32(xp[0].reshape(())), int(xp[1].reshape(()))
    sy, zy = np.float32(qp[0].reshape(())), int(qp[1].reshape(()))
    pre_pad = None
    if prod.op_type == "Conv":
        spec = _conv_shape(attrs, x_shape, w.shape)
        if spec is None:
            return None
        op, channel_axis, weight = "conv2d", 0, w
        if spec["pad"] and zx:
            # The kernel pads with u8 zeros, but the real zero is zx: the graph pads x with zx instead. (Channels
            # the kernel adds to reach its dot width meet zero weights: any value there is exact.)
            p = spec["pad"]
            pre_pad = ((0, 0), (0, 0), (p, p), (p, p))
            spec = {**spec, "H": spec["H"] + 2 * p, "W": spec["W"] + 2 * p, "pad": 0}
            x_shape = tuple(n + lo + hi for n, (lo, hi) in zip(x_shape, pre_pad))
    elif prod.op_type == "MatMul":
        if w.ndim != 2 or x_shape[-1] != w.shape[0]:
            return None
        op, channel_axis, weight = "gemm", 1, w
        spec = {"M": int(np.prod(x_shape[:-1])), "K": w.shape[0], "N": w.shape[1]}
    else:
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0 or len(x_shape) != 2:
            return None
        trans_b = attrs.get("transB", 0)
        op, channel_axis, weight = ("dense", 0, w) if trans_b else ("gemm", 1, w)
        spec = {"M": x_shape[0], "K": w.shape[1 if trans_b else 0], "N": w.shape[0 if trans_b else 1]}
    channels = w.shape[channel_axis]
    if wp[0].size > 1 and _attrs(dq_w).get("axis", 1) % w.ndim != channel_axis:
        return None  # scales per something other than the output channel
    sw = np.broadcast_to(wp[0].astype(np.float32).reshape(-1), (channels,))
    bias = np.zeros(channels, np.float64)
    if len(prod.input) > 2 and prod.input[2]:
        b = _constant_value(prod.input[2], producer, inits)
        if b is None:
            return None
        bias = np.broadcast_to(b.reshape(-1), (channels,)).astype(np.float64)
    other_axes = tuple(d for d in range(w.ndim) if d != channel_axis)
    sum_w = weight.astype(np.int64).sum(axis=other_axes)
    acc_scale = sx.astype(np.float64) * sw.astype(np.float64)
    folded_bias = np.rint(bias / acc_scale).astype(np.int64) - zx * sum_w
    if np.abs(folded_bias).max(initial=0) >= 2**31:
        return None
    out_shape = shapes.get(q.input[0])
    if out_shape is None:
        return None
    arrays = {
        "weight": weight,
        "bias": folded_bias.astype(np.int32),
        "scale": (sx * sw / sy).astype(np.float32),
        "zero": np.full(channels, zy, np.int32),
    }
    shape = {**spec, "bias": 1, **({"relu": 1} if relu else {})}
    out_dtype = "uint8" if qp[1].dtype == np.uint8 else "int8"
    nodes = [*nodes, index[id(prod)]]
    return Product(nodes, dq_x.input[0], q.output[0], op, shape, out_dtype, tuple(x_shape), tuple(out_shape), arrays, "", pre_pad, zx)


def _constant_value(name: str, producer, inits) -> np.ndarray | None:
    """A constant operand: an initializer, or the dequantized value of a DequantizeLinear of one
    (through Identity nodes, which exporters leave for shared initializers)."""
    while name not in inits and name in producer and producer[name].op_type == "Identity":
        name = producer[name].input[0]
    if name in inits:
        return inits[name].astype(np.float64)
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    value = _constant_value(dq.input[0], producer, inits)
    if value is None:
        return None
    qp = _quant_params(dq, inits)
    if qp is None:
        return None
    return (value - qp[1].astype(np.float64)) * qp[0].astype(np.float64)


def _conv_shape(attrs: dict, x_shape, w_shape) -> dict[str, int] | None:
    if len(x_shape) != 4 or attrs.get("group", 1) != 1 or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    strides, dilations = attrs.get("strides", [1, 1]), attrs.get("dilations", [1, 1])
    pads = attrs.get("pads", [0, 0, 0, 0])
    if len(set(strides)) != 1 or len(set(dilations)) != 1 or len(set(pads)) != 1:
        return None
    n, c, h, wd = x_shape
    k, c2, r, s = w_shape
    if c2 != c:
        return None
    return {"N": n, "C": c, "H": h, "W": wd, "K": k, "R": r, "S": s, "stride": strides[0], "pad": pads[0], "dilation": dilations[0]}


# --- tasks, build ------------------------------------------------------------------------------
def task_spec(product: Product, target: str = "dlboost", target_params: dict | None = None):
    from heron_core.task import PluginRef, TaskSpec

    return TaskSpec(
        target=PluginRef(name=target, params=target_params or {}),
        op=product.op,
        shape=product.shape,
        in_dtype="int8",
        out_dtype=product.out_dtype,
    )


def kernel_symbol(workload_key: str) -> str:
    return "heron." + re.sub(r"[^\w]+", "_", workload_key).strip("_")


@dataclass
class BuildResult:
    out: Path
    heron: list[Product]  # products running Heron kernels
    untuned: list[Product]  # products Heron could run but has no record for


def build_model(
    model_path: str | Path,
    db,
    out: str | Path,
    target: str = "dlboost",
    target_params: dict | None = None,
    log: Callable[[str], None] = lambda s: None,
    schedule_rest: bool = True,
) -> BuildResult:
    """Compile ``model_path`` into ``out`` with the best kernels of the RecordDB ``db``; the rest of the
    graph gets heron_core.graph_schedule's CPU schedules (``schedule_rest=False``: TVM's unscheduled loops)."""
    from heron_core import graph_schedule, tvm_compat
    from heron_core.export import export_library
    from heron_core.registry import registry
    from heron_core.task import PluginRef, Task, validate_params

    model = load_onnx(model_path)
    reg = registry()
    ref = PluginRef(name=target, params=target_params or {})
    tvm_target = reg.get("target", target).factory(validate_params(reg, "target", ref)).tvm_target()
    products = find_products(model)
    best = {(r.workload_key, r.target_key): r for r in db.best()}
    chosen, untuned, records = [], [], {}
    for p in products:
        task = Task(task_spec(p, target, target_params), reg)
        p.workload_key = task.workload_key
        record = best.get((task.workload_key, task.target_key))
        if record is None:
            untuned.append(p)
            continue
        chosen.append(p)
        records[record.workload_key] = record
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if records:
        log(f"exporting {len(records)} kernels")
        export_library(list(records.values()), out / "kernels", reg)
    log(f"compiling the model ({len(chosen)} of {len(products)} quantized products on Heron kernels)")
    mod = _import_with_kernels(model, chosen)
    executable = tvm_compat.build_relax(mod, tvm_target, graph_schedule.pipeline if schedule_rest else None)
    tvm_compat.export(executable, str(out / "model.so"))
    manifest = {
        "heron_model": MODEL_FORMAT,
        "source": str(model_path),
        "inputs": [
            {"name": i.name, "shape": list(_static_shapes(model)[i.name]), "dtype": _dtype(i)}
            for i in model.graph.input
            if i.name not in {init.name for init in model.graph.initializer}
        ],
        "outputs": [o.name for o in model.graph.output],
        "kernels": sorted({p.workload_key: kernel_symbol(p.workload_key) for p in chosen}.items()),
        "heron_nodes": [n for p in chosen for n in p.nodes],
        "untuned": sorted({p.workload_key for p in untuned}),
    }
    (out / "model.json").write_text(json.dumps(manifest, indent=2))
    return BuildResult(out, chosen, untuned)


def _dtype(value_info) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(value_info.type.tensor_type.elem_type)))


def _import_with_kernels(model, products: list[Product]):
    """The Relax module of ``model`` with each product replaced by a call of its Heron kernel."""
    import onnx
    from onnx import helper

    from heron_core import tvm_compat

    graph = onnx.GraphProto()
    graph.CopyFrom(model.graph)
    replaced = {n for p in products for n in p.nodes}
    by_out = {p.out: i for i, p in enumerate(products)}
    nodes = []
    for i, n in enumerate(graph.node):
        if i in replaced:
            if n.op_type == "QuantizeLinear" and n.output[0] in by_out:
                k = by_out[n.output[0]]
                nodes.append(helper.make_node(KERNEL_OP, [products[k].x], [n.output[0]], name=f"heron_{k}", domain=KERNEL_DOMAIN, kernel=k))
            continue
        nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    rewritten = helper.make_model(graph, opset_imports=[*model.opset_import, helper.make_opsetid(KERNEL_DOMAIN, 1)])
    rewritten.ir_version = model.ir_version
    calls = [_kernel_call(p) for p in products]
    return tvm_compat.relax_from_onnx(rewritten, KERNEL_OP, calls)


def _kernel_call(p: Product) -> dict:
    """What the importer needs to emit one kernel call: symbol, constant operands (weight packed), shapes."""
    from heron_core.registry import registry
    from heron_core.task import Task

    task = Task(task_spec(p), registry())
    layouts = task.context.arg_layouts(task)
    hint = task.op.dot_hint
    weight = p.arrays["weight"]
    if hint.weight in layouts:
        weight = layouts[hint.weight].pack(weight)
    names = [t.name for t in task.op.inputs][1:]  # after the activation: the weight, then the epilogue's operands
    consts = [weight, *(p.arrays[n] for n in names[1:])]
    kernel_in = task.op.inputs[0].shape
    return {
        "symbol": kernel_symbol(p.workload_key),
        "pre_pad": p.pre_pad,
        "pad_value": p.pad_value,
        "consts": consts,
        "in_shape": tuple(kernel_in),
        "kernel_out": tuple(task.op.output.shape),
        "out_shape": p.out_shape,
        "dtype": p.out_dtype,
    }


# --- load ------------------------------------------------------------------------------------
class Model:
    """A built model: ``model({name: array})`` or ``model(**arrays)`` -> the list of outputs (numpy)."""

    def __init__(self, path: str | Path):
        from heron_core import tvm_compat
        from heron_core.library import load_library

        root = Path(path)
        manifest_path = root / "model.json"
        if not manifest_path.is_file():
            raise ModelError(f"{root} is not a model built by heron build (no model.json)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("heron_model", 0) > MODEL_FORMAT:
            raise ModelError(f"{root}: model format {self.manifest['heron_model']} is newer than this Heron reads")
        self.kernels = load_library(root / "kernels") if self.manifest["kernels"] else None
        for workload_key, symbol in self.manifest["kernels"]:
            tvm_compat.register_function(symbol, self.kernels[workload_key].function)
        self.inputs = self.manifest["inputs"]
        self._vm = tvm_compat.relax_vm(str(root / "model.so"))

    def __call__(self, feeds: dict[str, np.ndarray] | None = None, **named: np.ndarray) -> list[np.ndarray]:
        from heron_core import tvm_compat

        return tvm_compat.relax_run(self._vm, self._arrays({**(feeds or {}), **named}))

    def profile(self, feeds: dict[str, np.ndarray]) -> dict[str, float]:
        """Seconds spent in each function the model calls (kernel symbols ``heron.*``, TVM's PrimFuncs,
        VM builtins), summed over one run."""
        from heron_core import tvm_compat

        return tvm_compat.relax_profile(self._vm, self._arrays(feeds))

    def _arrays(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        missing = [i["name"] for i in self.inputs if i["name"] not in feeds]
        if missing:
            raise HeronError(f"model inputs missing: {', '.join(missing)}")
        args = []
        for spec in self.inputs:
            a = np.ascontiguousarray(feeds[spec["name"]])
            if list(a.shape) != spec["shape"] or str(a.dtype) != spec["dtype"]:
                raise HeronError(f"input '{spec['name']}' must be {spec['dtype']}{spec['shape']}, got {a.dtype}{list(a.shape)}")
            args.append(a)
        return args


def load_model(path: str | Path) -> Model:
    return Model(path)


# --- check -----------------------------------------------------------------------------------
def random_feeds(inputs: list[dict], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        dtype = np.dtype(spec["dtype"])
        if dtype.kind in "iu":
            feeds[spec["name"]] = rng.integers(0, 100, spec["shape"]).astype(dtype)
        else:
            feeds[spec["name"]] = rng.standard_normal(spec["shape"]).astype(dtype)
    return feeds


def compare_with_onnxruntime(
    model_path: str | Path, model: Model, seed: int = 0, threads: int = 1, optimize: bool = True
) -> list[dict]:
    """Per output: max abs difference, relative L2 error and largest magnitude of Heron's outputs against
    ONNX Runtime's, and ``ort_spread``: the relative L2 distance between ONNX Runtime's optimized run and
    its run of the graph as written (float ops between DequantizeLinear and QuantizeLinear, no QLinear
    fusion), the int8 model's own noise. ``optimize=False`` compares with the latter."""
    feeds = random_feeds(model.inputs, seed)
    fused, unfused = (_onnxruntime_outputs(model_path, feeds, threads, opt) for opt in (True, False))
    expected = fused if optimize else unfused
    got = model(feeds)
    return [
        {
            "output": name,
            "max_abs": float(np.abs(g.astype(np.float64) - e.astype(np.float64)).max(initial=0)),
            "rel_l2": _rel_l2(g, e),
            "scale": float(np.abs(e.astype(np.float64)).max(initial=0)),
            "ort_spread": _rel_l2(u, f),
        }
        for name, e, g, f, u in zip(model.manifest["outputs"], expected, got, fused, unfused)
    ]


def check_passes(rows: list[dict]) -> bool:
    """Each output within CHECK_REL_L2 of ONNX Runtime's, or within CHECK_SPREAD x its own spread."""
    return all(r["rel_l2"] <= max(CHECK_REL_L2, CHECK_SPREAD * r["ort_spread"]) for r in rows)


def _rel_l2(got: np.ndarray, expected: np.ndarray) -> float:
    e64 = expected.astype(np.float64)
    return float(np.linalg.norm(got.astype(np.float64) - e64) / max(np.linalg.norm(e64), 1e-30))


def _onnxruntime_outputs(model_path: str | Path, feeds: dict, threads: int, optimize: bool) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def tune_configs(products: list[Product], trials: int, target_params: dict | None = None) -> list[dict]:
    """``heron tune -c`` configurations (one per output dtype) covering each distinct product workload."""
    by_dtype: dict[str, dict[str, dict]] = {}
    for p in products:
        by_dtype.setdefault(p.out_dtype, {})[json.dumps(p.shape, sort_keys=True) + p.op] = {"op": p.op, "shape": p.shape}
    return [
        {
            "target": {"name": "dlboost", **(target_params or {})},
            "cases": list(cases.values()),
            "in_dtype": "int8",
            "out_dtype": dtype,
            "trials": trials,
        }
        for dtype, cases in sorted(by_dtype.items())
    ]
