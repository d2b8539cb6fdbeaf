"""Vendor int8 baselines for one Heron operator and shape: times every int8 path of PyTorch (CPU)
and ONNX Runtime that computes the operator, checks each against the operator's numpy reference
and reports milliseconds and GOPS (the operator's own op count) as one JSON object.

    python bench/vendor.py --op conv2d --shape N=1,C=64,H=56,W=56,K=64,R=3,S=3,stride=1,pad=1 --threads 2 --isa vnni
    python bench/vendor.py --op gemm --shape G1 --threads 2    # a preset of the operator
    from vendor import measure_vendor                          # (bench/ on sys.path)
    measure_vendor("gemm", {"M": 512, "K": 512, "N": 512}, threads=2, isa="native")

Paths (one that does not apply or is not installed is recorded as {"skipped": reason}):
  torch._int_mm                  s8 x s8 -> s32, exact. It takes s8 activations: the u8 ones are
                                 shifted by -128 outside the timed call and the result corrected by
                                 +128 * colsum(B) after it: the same multiply-adds. bmm: one call per batch.
  torch.quantized.<op>[engine]   engines x86, onednn, fbgemm: prepacked qint8 weights, quint8
                                 activations (channels-last for convolutions, the engines' own layout),
                                 output requantized to quint8 as every quantized op does: not exact,
                                 checked by shape and correlation > 0.99 with the reference.
  ort.MatMulInteger              u8 x s8 -> s32, exact; constant weights as initializers.
  ort.ConvInteger                u8 x s8 -> s32, exact.       ort.QLinearConv: requantized u8.
The fastest path that passed its check is "best". Timing: warm-up, then the median of 7 repeats,
each running the call enough times to last >= 50 ms (a call slower than 2 s: 3 repeats of 1 call);
GOPS = op_count / seconds. A path's "onednn" lists the oneDNN primitives its first call ran
(oneDNN's verbose mode), and "onednn_isa" the ISA oneDNN reported: a check that AMX was avoided.

--isa vnni denies AMX (see vnni_only.py) before torch / onnxruntime load, so oneDNN and ONNX
Runtime's MLAS fall back to AVX-512 VNNI; measure_vendor(..., isa="vnni") therefore runs this
script in a fresh process. --isa native leaves the libraries free to use AMX where there is one.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

BENCH = Path(__file__).resolve().parent
ENGINES = ("x86", "onednn", "fbgemm")
MIN_REPEAT_S, REPEATS, SLOW_CALL_S = 0.05, 7, 2.0
NO_VNNI = (
    "no AVX-512 VNNI: u8 x s8 kernels multiply with vpmaddubsw, whose int16 pair sums saturate on "
    "full-range inputs, so the exact paths miss and the requantized ones lose correlation"
)
REQUANT = "requantized quint8 output (per-tensor scale/zero point spanning the reference's range)"


class Skip(Exception):
    """The path does not apply to this operator or is not installed."""


# --------------------------------------------------------------------------- the process
def cpu_info() -> dict:
    model, flags = "?", set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model == "?":
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"cpu": model, "amx_present": "amx_int8" in flags, "vnni_present": "avx512_vnni" in flags}


def set_thread_env(threads: int) -> None:
    """Thread counts of the OpenMP / BLAS pools, read when the libraries load."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)


def load(name: str):
    """The module, or the reason it cannot be imported."""
    try:
        return __import__(name), None
    except Exception as exc:  # ImportError, or a broken install
        return None, f"{name} not importable: {type(exc).__name__}: {exc}"


def build_op(op_name: str, shape):
    """The Heron operator object for a shape given as a dict, a list of values or text as ``--shape`` takes it."""
    if "heron_core" not in sys.modules:
        import importlib.util

        if importlib.util.find_spec("heron_core") is None:
            sys.path.insert(0, str(BENCH.parent))
    from heron_core import cli
    from heron_core.config import parse_shape
    from heron_core.errors import ConfigError
    from heron_core.registry import Registry, registry

    if isinstance(shape, str):
        shape = cli.parse_shape(shape)

    try:
        cls = registry().get("operator", op_name).factory
    except ConfigError:  # heron_core importable but not installed: no entry points, register the core by hand
        from heron_core import defaults

        cls = Registry(extra=[("core", defaults)], entry_points=False).get("operator", op_name).factory
    return cls(cls.Shape.model_validate(parse_shape(cls, shape)), "int8", "int32")


def valid_tap_ops(op) -> int:
    """Op count of a convolution without the taps that read padding (vendors skip those)."""
    s = op.shape
    if not hasattr(s, "kernel_extents"):
        return op.op_count()
    total = 2 * s.N * s.K * s.C // getattr(s, "group_count", 1)
    for n, r, o in zip(s.in_extents, s.kernel_extents, s.out_extents):
        total *= sum(0 <= oi * s.stride + ri * s.dilation - s.pad < n for oi in range(o) for ri in range(r))
    return total


@contextmanager
def onednn_trace(torch, found: dict):
    """Collect which oneDNN implementations run inside the block (its verbose lines go to fd 1):
    found["isa"] (oneDNN's ISA line, printed once a process) and found["impl"] (kind:implementation)."""
    if torch is None or not hasattr(torch.backends, "mkldnn"):
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                yield
        finally:
            ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines()
    for f in (line.split(",") for line in lines if line.startswith("onednn_verbose")):
        if len(f) > 4 and f[2:4] == ["info", "cpu"] and f[4].startswith("isa:"):
            found["isa"] = f[4][4:]
        elif len(f) > 6 and f[2:4] == ["primitive", "exec"] and f[5] != "reorder":
            impls = found.setdefault("impl", [])
            if f"{f[5]}:{f[6]}" not in impls:
                impls.append(f"{f[5]}:{f[6]}")


# --------------------------------------------------------------------------- timing and checks
def run_n(fn: Callable[[], Any], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def time_call(fn: Callable[[], Any]) -> dict:
    """Median seconds per call over REPEATS repeats of ``number`` calls lasting >= MIN_REPEAT_S each.
    The calibration is the warm-up: it grows ``number`` until two batches in a row last that long,
    since the first calls of some paths are far slower (lazy packing, primitive creation)."""
    fn()
    number, hits = 1, 0
    while hits < 2:
        spent = run_n(fn, number)
        if spent >= MIN_REPEAT_S:
            hits += 1
        else:
            hits, number = 0, math.ceil(number * min(10.0, 1.2 * MIN_REPEAT_S / max(spent, 1e-7)))
    repeats = 3 if number == 1 and spent > SLOW_CALL_S else REPEATS
    gc.disable()
    try:
        times = [run_n(fn, number) / number for _ in range(repeats)]
    finally:
        gc.enable()
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": repeats, "number": number}


def exact(ref, out) -> dict:
    import numpy as np

    if out.shape != ref.shape:
        return {"exact": True, "correct": False, "mismatch": f"shape {out.shape} != {ref.shape}"}
    bad = out != ref
    verdict = {"exact": True, "correct": not bad.any()}
    if bad.any():
        err = np.abs(out.astype(np.int64) - ref.astype(np.int64)).max()
        verdict["mismatch"] = f"{bad.mean():.2%} of elements differ, max |error| {err}"
    return verdict


def requantized(ref, out) -> dict:
    import numpy as np

    if out.shape != ref.shape:
        return {"exact": False, "correct": False, "mismatch": f"shape {out.shape} != {ref.shape}"}
    corr = float(np.corrcoef(out.ravel().astype(np.float64), ref.ravel().astype(np.float64))[0, 1])
    return {"exact": False, "correct": corr > 0.99, "correlation": round(corr, 6)}


def out_qparams(ref) -> tuple[float, int]:
    """A u8 output scale and zero point that span the reference's range."""
    lo, hi = min(int(ref.min()), 0), max(int(ref.max()), 0)
    scale = max(hi - lo, 1) / 255.0
    return scale, int(min(255, max(0, round(-lo / scale))))


# --------------------------------------------------------------------------- operands
@dataclass
class Ctx:
    op: Any
    arrays: dict
    ref: Any
    threads: int
    libs: dict = field(default_factory=dict)  # name -> (module or None, reason)

    def need(self, name: str):
        module, reason = self.libs[name]
        if module is None:
            raise Skip(reason)
        return module

    def matmul(self):
        """(u8 activation [.., M, K], s8 operand [.., K, N], whether that operand is a constant weight)."""
        return MATMUL_VIEWS[self.op.name](self.op, self.arrays)


def scan_mask(s):
    import numpy as np

    return (np.arange(s.K)[None, :] <= np.arange(s.N)[:, None]).astype(np.int8)  # [N, K], as Heron's constant


MATMUL_VIEWS = {
    "gemm": lambda op, a: (a["A"], a["B"], True),
    "dense": lambda op, a: (a["A"], a["B"].T, True),
    "bmm": lambda op, a: (a["A"], a["B"], False),
    "gemv": lambda op, a: (a["x"][None, :], a["W"].T, True),  # one row: y^T = x^T W^T
    "scan": lambda op, a: (a["A"], scan_mask(op.shape).T, True),
}


def qtensor(torch, array, channels_last: bool = False):
    """A per-tensor quantized tensor (scale 1, zero point 0) holding ``array``'s u8 / s8 values;
    channels_last: the same logical tensor stored with channels innermost."""
    import numpy as np

    if not channels_last:
        return torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(array)), 1.0, 0)
    nd = array.ndim
    q = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, 1, -1))), 1.0, 0)
    return q.permute(0, nd - 1, *range(1, nd - 1))


def engine(ctx: Ctx, name: str):
    torch = ctx.need("torch")
    if name not in torch.backends.quantized.supported_engines:
        raise Skip(f"engine {name} not in {torch.backends.quantized.supported_engines}")
    torch.backends.quantized.engine = name
    return torch


# --------------------------------------------------------------------------- PyTorch paths
# A path yields (name, setup); setup() returns (call, check, note): call() is what is timed,
# check(call()) the verdict dict.
def torch_int_mm(ctx: Ctx) -> Iterator:
    def setup():
        import numpy as np

        torch = ctx.need("torch")
        a, b, _ = ctx.matmul()
        a8 = torch.from_numpy((a.astype(np.int16) - 128).astype(np.int8))
        bt = torch.from_numpy(np.ascontiguousarray(b))
        fix = 128 * b.astype(np.int64).sum(-2, keepdims=True)
        if a.ndim == 3:
            pairs = list(zip(a8.unbind(0), bt.unbind(0)))
            call = lambda: [torch._int_mm(x, y) for x, y in pairs]  # noqa: E731
        else:
            call = lambda: torch._int_mm(a8, bt)  # noqa: E731

        def check(out):
            c = torch.stack(out) if isinstance(out, list) else out
            return exact(ctx.ref, (c.numpy() + fix).astype(np.int32).reshape(ctx.ref.shape))

        note = "s8 x s8 -> s32; u8 activations shifted by -128 outside the call, +128*colsum(B) after"
        return call, check, note + ("; one call per batch" if a.ndim == 3 else "")

    yield "torch._int_mm", setup


def torch_qlinear(ctx: Ctx) -> Iterator:
    def setup(name):
        torch = engine(ctx, name)
        a, b, weight = ctx.matmul()
        if not weight:
            raise Skip("the s8 operand is an activation, but quantized.linear takes a prepacked constant weight")
        qa, qw = qtensor(torch, a), qtensor(torch, b.T)  # weight as (out, in)
        packed = torch.ops.quantized.linear_prepack(qw, None)
        scale, zp = out_qparams(ctx.ref)
        call = lambda: torch.ops.quantized.linear(qa, packed, scale, zp)  # noqa: E731
        check = lambda q: requantized(ctx.ref, q.dequantize().numpy().reshape(ctx.ref.shape))  # noqa: E731
        return call, check, f"prepacked qint8 weight; {REQUANT}"

    for name in ENGINES:
        yield f"torch.quantized.linear[{name}]", partial(setup, name)


def torch_qconv(ctx: Ctx) -> Iterator:
    s, transposed = ctx.op.shape, ctx.op.name == "t2d"
    dims = 2 if transposed else len(s.spatial)
    kind = "conv_transpose2d" if transposed else f"conv{dims}d"

    def setup(name):
        torch = engine(ctx, name)
        q = torch.ops.quantized
        qx, qw = qtensor(torch, ctx.arrays["x"], channels_last=True), qtensor(torch, ctx.arrays["w"])
        if transposed:
            packed = q.conv_transpose2d_prepack(qw, None, [s.stride] * 2, [s.pad] * 2, [s.output_pad] * 2, [1, 1], 1)
        else:
            prepack = getattr(q, f"{kind}_prepack")
            packed = prepack(qw, None, [s.stride] * dims, [s.pad] * dims, [s.dilation] * dims, getattr(s, "group_count", 1))
        run, (scale, zp) = getattr(q, kind), out_qparams(ctx.ref)
        call = lambda: run(qx, packed, scale, zp)  # noqa: E731
        check = lambda y: requantized(ctx.ref, y.dequantize().numpy())  # noqa: E731
        return call, check, f"prepacked qint8 weight, channels-last quint8 input; {REQUANT}"

    for name in ENGINES:
        yield f"torch.quantized.{kind}[{name}]", partial(setup, name)


# --------------------------------------------------------------------------- ONNX Runtime paths
def ort_session(ctx: Ctx, node_type: str, inputs: dict, inits: dict, out_type: str, **attrs):
    """A one-node model built in memory; returns run() -> the output array."""
    ort, onnx = ctx.need("onnxruntime"), ctx.need("onnx")
    from onnx import helper, numpy_helper

    def info(name, array):
        return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(array.dtype), array.shape)

    node = helper.make_node(node_type, NODE_INPUTS[node_type], ["Y"], **attrs)
    out = helper.make_tensor_value_info("Y", getattr(onnx.TensorProto, out_type), None)
    ins, consts = [info(n, a) for n, a in inputs.items()], [numpy_helper.from_array(a, n) for n, a in inits.items()]
    graph = helper.make_graph([node], node_type, ins, [out], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what onnxruntime releases back to 1.10 accept
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = ctx.threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return lambda: sess.run(None, inputs)[0]


NODE_INPUTS = {
    "MatMulInteger": ["A", "B"],
    "ConvInteger": ["x", "w"],
    "QLinearConv": ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale", "y_zero_point"],
}


def ort_matmul_integer(ctx: Ctx) -> Iterator:
    def setup():
        import numpy as np

        a, b, weight = ctx.matmul()
        inputs, inits = {"A": np.ascontiguousarray(a)}, {}
        (inits if weight else inputs)["B"] = np.ascontiguousarray(b)
        run = ort_session(ctx, "MatMulInteger", inputs, inits, "INT32")
        note = "u8 x s8 -> s32" + ("; weight as an initializer" if weight else "; both operands inputs")
        return run, lambda y: exact(ctx.ref, y.reshape(ctx.ref.shape)), note

    yield "ort.MatMulInteger", setup


def ort_conv(ctx: Ctx) -> Iterator:
    s = ctx.op.shape
    dims = len(s.spatial)
    attrs = {"kernel_shape": list(s.kernel_extents), "strides": [s.stride] * dims, "dilations": [s.dilation] * dims}
    attrs["pads"] = [s.pad] * 2 * dims
    attrs["group"] = getattr(s, "group_count", 1)

    def conv_integer():
        run = ort_session(ctx, "ConvInteger", {"x": ctx.arrays["x"]}, {"w": ctx.arrays["w"]}, "INT32", **attrs)
        return run, lambda y: exact(ctx.ref, y), "u8 x s8 -> s32"

    def qlinear_conv():
        import numpy as np

        scale, zp = out_qparams(ctx.ref)
        f32, u8 = np.float32, np.uint8
        inits = {
            "x_scale": np.array(1, f32), "x_zero_point": np.array(0, u8), "w": ctx.arrays["w"],
            "w_scale": np.array(1, f32), "w_zero_point": np.array(0, np.int8),
            "y_scale": np.array(scale, f32), "y_zero_point": np.array(zp, u8),
        }  # fmt: skip
        run = ort_session(ctx, "QLinearConv", {"x": ctx.arrays["x"]}, inits, "UINT8", **attrs)
        check = lambda y: requantized(ctx.ref, (y.astype(np.float64) - zp) * scale)  # noqa: E731
        return run, check, f"NCHW input; {REQUANT}"

    yield "ort.QLinearConv", qlinear_conv
    yield "ort.ConvInteger", conv_integer


def ort_conv_transpose(ctx: Ctx) -> Iterator:
    def setup():
        ctx.need("onnxruntime")
        raise Skip("ONNX has no integer ConvTranspose (no ConvTransposeInteger / QLinearConvTranspose on the CPU provider)")

    yield "ort.ConvTranspose", setup


MATMUL_PATHS = [torch_int_mm, torch_qlinear, ort_matmul_integer]
CONV_PATHS = [torch_qconv, ort_conv]
PATHS: dict[str, list[Callable[[Ctx], Iterator]]] = {
    **dict.fromkeys(("gemm", "dense", "gemv", "scan", "bmm"), MATMUL_PATHS),
    **dict.fromkeys(("conv1d", "conv2d", "conv3d", "dil", "dep"), CONV_PATHS),
    "t2d": [torch_qconv, ort_conv_transpose],
}


# --------------------------------------------------------------------------- measuring
def run_path(setup, ctx: Ctx) -> dict:
    onednn: dict = {}
    try:
        call, check, note = setup()
        with onednn_trace(ctx.libs.get("torch", (None, ""))[0], onednn):  # (no torch: no oneDNN trace)
            out = call()
        verdict = check(out)
        t = time_call(call)
    except Skip as exc:
        return {"skipped": str(exc)}, onednn.get("isa")
    except Exception as exc:  # a path that fails must not take the others down
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return {"skipped": f"failed: {type(exc).__name__}: {first}"}, onednn.get("isa")
    ops = ctx.op.op_count()
    return {
        "ms": t["median_s"] * 1e3,
        "gops": ops / t["median_s"] / 1e9,
        **verdict,
        "ms_min": t["min_s"] * 1e3,
        "repeats": t["repeats"],
        "calls_per_repeat": t["number"],
        **({"onednn": onednn["impl"]} if onednn.get("impl") else {}),
        "note": note,
    }, onednn.get("isa")


def channels_first(op):
    """A channels-last convolution as its channels-first twin: each path takes the layout it prefers
    whatever Heron's (PyTorch channels-last, made once outside the timing; ONNX Runtime NCHW)."""
    if not getattr(op.shape, "channels_last", False):
        return op
    return type(op)(op.shape.model_copy(update={"channels_last": False}), op.in_dtype, op.out_dtype)


def measure(op, threads: int, isa: str, restricted: bool = False, probe: str | None = None) -> dict:
    """Measure the operator object ``op`` in this process, with whatever ISA restriction it already has."""
    if op.name not in PATHS:
        raise ValueError(f"no vendor paths for operator '{op.name}' (known: {', '.join(PATHS)})")
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
    libs = {name: load(name) for name in ("torch", "onnx", "onnxruntime")}
    torch = libs["torch"][0]
    if torch is not None:  # restored afterwards for a caller that measures in its own process
        caller = torch.get_num_threads(), torch.backends.quantized.engine
        torch.set_num_threads(threads)
    op = channels_first(op)
    arrays = op.random_inputs(0)
    ctx = Ctx(op, arrays, op.reference(arrays), threads, libs)
    paths, onednn_isa = {}, None
    for maker in PATHS[op.name]:
        for name, setup in maker(ctx):
            paths[name], isa_line = run_path(setup, ctx)
            onednn_isa = onednn_isa or isa_line
    if torch is not None:
        torch.set_num_threads(caller[0])
        torch.backends.quantized.engine = caller[1]
    ok = {name: p for name, p in paths.items() if p.get("correct")}
    best = min(ok, key=lambda n: ok[n]["ms"], default=None)
    version = lambda name: getattr(libs[name][0], "__version__", None)  # noqa: E731
    cpu = cpu_info()
    return {
        "op": op.name,
        "shape": op.shape.model_dump(),
        "threads": threads,
        "isa": isa,
        **cpu,
        "restricted": restricted,
        "amx_request": probe,
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "onednn_isa": onednn_isa,
        "torch": version("torch"),
        "onnxruntime": version("onnxruntime"),
        "python": sys.version.split()[0],
        "op_count": op.op_count(),
        "op_count_valid_taps": valid_tap_ops(op),
        "paths": paths,
        "best": {"path": best, "ms": ok[best]["ms"], "gops": ok[best]["gops"]} if best else None,
        **({} if cpu["vnni_present"] else {"note": NO_VNNI}),
    }


def shape_arg(shape) -> str:
    if isinstance(shape, dict):
        return ",".join(f"{k}={v}" for k, v in shape.items())
    if isinstance(shape, (list, tuple)):
        return ",".join(map(str, shape))
    return str(shape)


def check_threads(threads: int) -> None:
    """The libraries' threads inherit this process's CPU mask (TVM pins its own threads): more
    threads than the mask allows would share CPUs and slow the vendor down unseen."""
    allowed = sorted(os.sched_getaffinity(0))
    if threads > len(allowed):
        raise ValueError(f"{threads} vendor threads, but this process may run on CPUs {allowed} only; widen the mask (taskset)")


def measure_vendor(op_name: str, shape, threads: int, isa: str = "native", timeout: float | None = None) -> dict:
    """The vendor baselines of ``op_name`` at ``shape`` on ``threads`` threads, as a dict (see the module doc).

    isa="native" measures in this process; isa="vnni" in a fresh process that denies AMX before the
    libraries load (a process that has loaded them cannot give AMX up)."""
    check_threads(threads)
    if isa == "native":
        return measure(build_op(op_name, shape), threads, isa)
    if isa != "vnni":
        raise ValueError(f"isa must be 'native' or 'vnni', not {isa!r}")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--op", op_name, "--shape", shape_arg(shape)]
    cmd += ["--threads", str(threads), "--isa", isa]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode == 0 and lines:
            return json.loads(lines[-1])
        error = f"exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"
    except subprocess.TimeoutExpired:
        error = f"timed out after {timeout} s"
    error = f"{' '.join(cmd)}: {error}"
    return {"op": op_name, "shape": shape, "threads": threads, "isa": isa, "error": error, "paths": {}, "best": None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", required=True, help=f"a Heron operator: {', '.join(PATHS)}")
    ap.add_argument("--shape", default=None, help="K=V,... or the values in order, or a preset name (default: the operator's)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--isa", choices=("native", "vnni"), default="native")
    ap.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    args = ap.parse_args(argv)
    set_thread_env(args.threads)
    restricted, probe = False, None
    if args.isa == "vnni":  # before torch / onnxruntime / numpy load, while this process has one thread
        sys.path.insert(0, str(BENCH))
        import vnni_only

        vnni_only.restrict()
        probe = vnni_only.probe()
        restricted = probe == "EPERM"
        if not restricted:
            raise SystemExit(f"the AMX restriction did not take: arch_prctl(ARCH_REQ_XCOMP_PERM) answers {probe}")
    try:
        op = build_op(args.op, args.shape)
    except Exception as exc:  # an unknown operator, a bad shape
        print(f"vendor.py: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(measure(op, args.threads, args.isa, restricted, probe), indent=args.indent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
