"""Heron kernels in PyTorch (extra ``torch``).

``heron::kernel`` is a ``torch.library`` custom op that calls an exported Heron kernel on torch
tensors in place (TVM functions take them through DLPack: no copies), with a fake implementation
so that it traces under ``torch.compile``. :func:`swap_modules` replaces a model's ``nn.Linear``
and ``nn.Conv2d`` layers by modules calling the library's kernels:

- CPU (u8 x s8 -> s32 kernels): dynamic int8. Activations are quantized per tensor to u8 at run
  time (asymmetric, as ``torch.ao.quantization.quantize_dynamic`` does with ``reduce_range=False``),
  weights to s8 per output channel (symmetric) and packed once; the s32 result is dequantized,
  the input zero point removed and the bias added in fp32:
  ``y = (acc - zx * sum_k w[n, k]) * sx * sw[n] + b[n] = acc * (sx sw[n]) + (b[n] - zx sx sw[n] sum_k w[n, k])``.
  The whole layer (quantize, kernel, dequantize) is one custom op, ``heron::dynamic_int8``: PyTorch's
  fused per-tensor quantization, then a kernel that dequantizes in its epilogue (an ``int8 -> float32``
  dense kernel, when the library has one) or the s32 kernel and one ``addcmul``; the same eager and
  under ``torch.compile``.
- GPU (fp16 Tensor Core kernels): the layer runs in fp16 with the kernel's accumulation.

A layer whose shape has no kernel in the library stays as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from heron_core.layout import BlockedLayout
from heron_core.library import Kernel, Library, load_library

_FUNCTIONS: dict[str, object] = {}  # kernel id -> TVM function (custom ops take only tensors and plain values)
_LIBRARIES: dict[str, Library] = {}  # what keeps each function's shared object loaded
_DEQUANTIZING: set[str] = set()  # kernel ids whose epilogue dequantizes (scale and shift arguments, float32 out)


def _run_kernel(args: list[torch.Tensor], name: str, out_shape: list[int], out_dtype: torch.dtype) -> torch.Tensor:
    out = torch.empty(out_shape, dtype=out_dtype, device=args[0].device)
    _FUNCTIONS[name](*[_aligned(a) for a in args], out)
    return out


kernel = torch.library.custom_op("heron::kernel", _run_kernel, mutates_args=())


def _call(op, fn, *args):
    """``op`` (a custom op) while ``torch.compile`` traces, so that it appears in the graph; eager, its function
    ``fn`` itself (under the op's name while torch.profiler records): the custom op's dispatch, like a profiler
    range, costs ~55 us a call (BERT's 768x768 linear: 0.50 ms through it, 0.43 direct, measured)."""
    if torch.compiler.is_compiling():
        return op(*args)
    if not torch.autograd.profiler._is_profiler_enabled:
        return fn(*args)
    with torch.profiler.record_function(f"heron::{fn.__name__.removeprefix('_run_')}"):
        return fn(*args)


def _aligned(t: torch.Tensor) -> torch.Tensor:
    """TVM kernels assume 64-byte aligned buffers (aligned vector loads); PyTorch allocates so, a view may not be."""
    t = t.contiguous()
    return t if t.data_ptr() % 64 == 0 else t.clone()


@kernel.register_fake
def _(args, name, out_shape, out_dtype):
    return args[0].new_empty(out_shape, dtype=out_dtype)


def register(lib: Library, workload_key: str) -> str:
    """Make ``lib``'s kernel callable as ``torch.ops.heron.kernel(args, name, ...)``; returns its name."""
    name = f"{lib.path.resolve()}::{workload_key}"
    _LIBRARIES[name] = lib
    _FUNCTIONS[name] = lib[workload_key].function
    if "shift" in {p["name"] for p in lib[workload_key].params}:
        _DEQUANTIZING.add(name)
    return name


def _pack(k: Kernel, arg: str, array: np.ndarray) -> torch.Tensor:
    param = next(p for p in k.params if p["name"] == arg)
    if param.get("layout"):
        array = BlockedLayout.model_validate(param["layout"]).pack(array)
    return torch.from_numpy(np.ascontiguousarray(array)).clone()  # PyTorch's allocation: 64-byte aligned


def _quantize_weight(w: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """s8 per output channel (dim 0), symmetric: (weights, scales)."""
    flat = w.detach().float().reshape(w.shape[0], -1)
    scale = flat.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    q = torch.round(flat / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(w.shape)
    return q.numpy(), scale


def _quantize_activation(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """u8 per tensor, asymmetric with 0 representable: (values, scale, zero point). PyTorch's fused
    kernel (min/max and quantization in two vectorized passes); its storage read as plain u8, not copied."""
    q = torch.quantize_per_tensor_dynamic(x.contiguous(), torch.quint8, False)
    return torch.empty(0, dtype=torch.uint8).set_(q.untyped_storage(), 0, q.shape), q.q_scale(), q.q_zero_point()


def _run_dynamic_int8(
    x: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    zero_sum: torch.Tensor,
    bias: torch.Tensor,
    name: str,
    out_shape: list[int],
) -> torch.Tensor:
    """A u8 x s8 kernel on fp32 ``x``: ``acc * (sx * scale) + (bias - zx * sx * zero_sum)`` (all broadcast to the output),
    by the kernel's own epilogue where it dequantizes (per-channel vectors: dense), else by one ``addcmul`` after it."""
    q, sx, zx = _quantize_activation(x)
    shift = torch.add(bias, zero_sum, alpha=-zx * sx)
    if name in _DEQUANTIZING:
        out = torch.empty(out_shape, dtype=torch.float32)
        _FUNCTIONS[name](_aligned(q), weight, scale * sx, shift, out)
        return out
    acc = torch.empty(out_shape, dtype=torch.int32)
    _FUNCTIONS[name](_aligned(q), weight, acc)
    return torch.addcmul(shift, acc, scale * sx)


dynamic_int8 = torch.library.custom_op("heron::dynamic_int8", _run_dynamic_int8, mutates_args=())


@dynamic_int8.register_fake
def _(x, weight, scale, zero_sum, bias, name, out_shape):
    return x.new_empty(out_shape)


class Int8Linear(nn.Module):
    """nn.Linear on a Heron dense kernel (M, K, N): dynamic int8, fp32 in and out."""

    def __init__(self, linear: nn.Linear, lib: Library, workload_key: str, rows: int):
        super().__init__()
        k = lib[workload_key]
        w, scale = _quantize_weight(linear.weight)
        self.name, self.rows, self.out_features = register(lib, workload_key), rows, linear.out_features
        self.register_buffer("weight_packed", _pack(k, "B", w))
        self.register_buffer("weight_scale", scale)
        self.register_buffer("zero_sum", scale * torch.from_numpy(w.astype(np.int64).sum(axis=1)).float())
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(linear.out_features)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (self.weight_packed, self.weight_scale, self.zero_sum, self.bias, self.name, [self.rows, self.out_features])
        y = _call(dynamic_int8, _run_dynamic_int8, x.reshape(self.rows, -1), *args)
        return y.reshape(*x.shape[:-1], self.out_features)


class Int8Conv2d(nn.Module):
    """nn.Conv2d on a Heron conv2d kernel (NCHW): dynamic int8, fp32 in and out. Zero padding is
    applied to the quantized input by the kernel, so the zero point is removed tap by tap: its
    correction is the convolution of a plane of ones (exact at the borders), computed once."""

    def __init__(self, conv: nn.Conv2d, lib: Library, workload_key: str, in_shape: tuple, out_shape: list[int]):
        super().__init__()
        k = lib[workload_key]
        w, scale = _quantize_weight(conv.weight)
        self.name, self.out_shape = register(lib, workload_key), out_shape
        scale = scale.reshape(1, -1, 1, 1)
        ones = torch.ones(1, *in_shape[1:])
        taps = nn.functional.conv2d(ones, torch.from_numpy(w).float(), None, conv.stride, conv.padding, conv.dilation)
        self.register_buffer("weight_packed", _pack(k, "w", w))
        self.register_buffer("weight_scale", scale)
        self.register_buffer("zero_sum", scale * taps)
        bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("bias", bias.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        args = (self.weight_packed, self.weight_scale, self.zero_sum, self.bias, self.name, self.out_shape)
        return _call(dynamic_int8, _run_dynamic_int8, x, *args)


class HalfLinear(nn.Module):
    """nn.Linear on a Heron fp16 Tensor Core dense kernel (GPU)."""

    def __init__(self, linear: nn.Linear, lib: Library, workload_key: str, rows: int, out_dtype: torch.dtype):
        super().__init__()
        k = lib[workload_key]
        self.name, self.rows, self.out_dtype = register(lib, workload_key), rows, out_dtype
        self.out_features = linear.out_features
        self.register_buffer("weight_packed", _pack(k, "B", linear.weight.detach().half().cpu().numpy()).to(linear.weight.device))
        self.register_buffer("bias", linear.bias.detach().half() if linear.bias is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        a = x.reshape(self.rows, -1).half()
        y = _call(kernel, _run_kernel, [a, self.weight_packed], self.name, [self.rows, self.out_features], self.out_dtype).half()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features).to(x.dtype)


def _kernels(lib: Library) -> dict[tuple, str]:
    """(op, shape without epilogue flags, in dtype, out dtype) -> workload key, for kernels with no bias or ReLU (an
    int8 -> float32 one dequantizes)."""
    found = {}
    for e in lib.manifest["kernels"]:
        shape = dict(e["shape"])
        if shape.pop("bias", False) or shape.pop("relu", False) or e["out_dtype"] not in ("int32", "float16", "float32"):
            continue
        if shape.get("groups") == 1:  # swapped convolutions have one group
            del shape["groups"]
        found[(e["op"], tuple(sorted(shape.items())), e["in_dtype"], e["out_dtype"])] = e["workload_key"]
    return found


def _first(kernels: dict, op: str, shape: tuple, in_dtype: str, out_dtypes: tuple[str, ...]) -> str | None:
    return next((kernels[k] for k in ((op, shape, in_dtype, o) for o in out_dtypes) if k in kernels), None)


def swap_modules(model: nn.Module, lib: Library | str | Path, example: tuple | None = None) -> list[str]:
    """Replace, in place, each nn.Linear / nn.Conv2d of ``model`` whose shape has a kernel in ``lib``.

    Kernels are shape-specific: ``example`` (the model's inputs) is run once to learn each layer's
    input shape. Returns the names of the layers swapped."""
    if not isinstance(lib, Library):
        lib = load_library(lib)
    kernels = _kernels(lib)
    shapes: dict[str, tuple] = {}

    def record(name: str):
        def hook(module, inputs, output) -> None:
            shapes.setdefault(name, (tuple(inputs[0].shape), tuple(output.shape)))

        return hook

    hooks = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        if example is not None:
            with torch.no_grad():
                model(*example)
    finally:
        for h in hooks:
            h.remove()
    swapped = []
    for name, module in list(model.named_modules()):
        if name not in shapes:
            continue
        new = _replacement(module, shapes[name], lib, kernels)
        if new is not None:
            parent, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, attr, new)
            swapped.append(name)
    return swapped


def _replacement(module: nn.Module, io: tuple, lib: Library, kernels: dict) -> nn.Module | None:
    (in_shape, out_shape) = io
    if isinstance(module, nn.Linear):
        rows = int(np.prod(in_shape[:-1]))
        shape = tuple(sorted({"M": rows, "K": module.in_features, "N": module.out_features}.items()))
        if module.weight.is_cuda:
            key = _first(kernels, "dense", shape, "float16", ("float16", "float32"))
            if key:
                out = torch.float16 if lib[key].output["dtype"] == "float16" else torch.float32
                return HalfLinear(module, lib, key, rows, out)
            return None
        key = _first(kernels, "dense", shape, "int8", ("float32", "int32"))  # a dequantizing kernel first
        return Int8Linear(module, lib, key, rows) if key else None
    c = module
    if c.groups != 1 or c.padding_mode != "zeros" or isinstance(c.padding, str) or module.weight.is_cuda:
        return None
    if len(set(c.stride)) != 1 or len(set(c.padding)) != 1 or len(set(c.dilation)) != 1 or len(in_shape) != 4:
        return None
    n, ch, h, w = in_shape
    spec = {"N": n, "C": ch, "H": h, "W": w, "K": c.out_channels, "R": c.kernel_size[0], "S": c.kernel_size[1],
            "stride": c.stride[0], "pad": c.padding[0], "dilation": c.dilation[0], "channels_last": False}
    # s32 only: the zero point's correction varies along the borders, not a per-channel shift
    key = _first(kernels, "conv2d", tuple(sorted(spec.items())), "int8", ("int32",))
    return Int8Conv2d(module, lib, key, in_shape, list(out_shape)) if key else None
