"""Load a library written by ``heron export`` and call its kernels with numpy arrays.

Needs numpy and the TVM runtime only: no solver, no cost model, no plugin. ::

    lib = heron_core.load_library("mylib")
    C = lib["gemm[M=512,K=512,N=512]:int8->int32"](A, B)   # or lib.kernels[...], lib.find(op="gemm")
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from heron_core import process
from heron_core.errors import HeronError
from heron_core.layout import layout_from_dict
from heron_core.operator import numpy_dtype

FORMAT = 1
ENTRY_KEYS = frozenset({"workload_key", "op", "shape", "module", "params", "device", "target_info"})


class LibraryError(HeronError):
    """A library that cannot be loaded here, or a kernel called with the wrong arguments."""


def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_file(root: Path, name: str, entry: dict) -> Path:
    """``root / name``, refused if it leaves the library folder, is missing, or differs from the
    sha256 the manifest recorded at export (a truncated or replaced file)."""
    path = (root / name).resolve()
    if not path.is_relative_to(root.resolve()):
        raise LibraryError(f"{root}: the manifest names {name!r}, outside the library folder: refused")
    if not path.is_file():
        raise LibraryError(f"{root}: {name} is missing (kernel {entry['workload_key']}); re-export it")
    expected = entry.get("sha256", {}).get(name)
    if expected is not None and sha256(path) != expected:
        raise LibraryError(
            f"{root}: {name} is not the file exported (its sha256 differs from the manifest's: truncated or "
            f"replaced); re-export kernel {entry['workload_key']}"
        )
    return path


class Packed:
    """An argument already in the kernel's layout (see :meth:`Kernel.pack`): pack constant
    weights once and pass them on every call."""

    def __init__(self, name: str, tensor):
        self.name, self.tensor = name, tensor


class Kernel:
    def __init__(self, entry: dict[str, Any], root: Path):
        from heron_core import tvm_compat

        self.entry = entry
        self.name: str = entry["workload_key"]
        self.params: list[dict] = entry["params"]
        self.inputs = [p for p in self.params if p["role"] in ("input", "weight")]
        self.output = next(p for p in self.params if p["role"] == "output")
        self.device = tvm_compat.device(entry["device"])
        module = library_file(root, entry["module"], entry)
        self._fn = tvm_compat.load(str(module))["main"]
        self._constants = [
            self._to_device(p, np.load(library_file(root, p["file"], entry))) for p in self.params if p["role"] == "constant"
        ]

    def __repr__(self) -> str:
        args = ", ".join(f"{p['name']}: {p['dtype']}{list(p['shape'])}" for p in self.inputs)
        return f"<Kernel {self.name}({args}) -> {self.output['dtype']}{list(self.output['shape'])}>"

    @property
    def function(self):
        """The compiled TVM function: arguments in the kernel's layouts, the output last (destination-passing)."""
        return self._fn

    def pack(self, name: str, array: np.ndarray) -> Packed:
        """``array`` (logical layout) converted once to the kernel's layout for argument ``name``."""
        param = next((p for p in self.inputs if p["name"] == name), None)
        if param is None:
            raise LibraryError(f"{self.name} has no argument '{name}' (it takes {', '.join(p['name'] for p in self.inputs)})")
        return Packed(name, self._to_device(param, array))

    def __call__(self, *args, out: np.ndarray | None = None) -> np.ndarray:
        from heron_core import tvm_compat

        if len(args) != len(self.inputs):
            raise LibraryError(f"{self!r} takes {len(self.inputs)} arguments, got {len(args)}")
        tensors = [
            a.tensor if isinstance(a, Packed) and a.name == p["name"] else self._to_device(p, a)
            for p, a in zip(self.inputs, args)
        ]
        result = tvm_compat.to_device([np.zeros(self.output["shape"], numpy_dtype(self.output["dtype"]))], self.device)[0]
        self._fn(*tensors, *self._constants, result)
        if out is not None:
            out[...] = result.numpy()
            return out
        return result.numpy()

    def _to_device(self, param: dict, value):
        from heron_core import tvm_compat

        if isinstance(value, Packed):
            raise LibraryError(f"argument '{param['name']}' got the packed '{value.name}'")
        if not isinstance(value, np.ndarray):  # a TVM tensor, already in the kernel's layout
            shape, dtype = tuple(value.shape), str(value.dtype)
            if shape != tuple(param["kernel_shape"]) or dtype != param["dtype"]:
                raise LibraryError(
                    f"{self.name}: TVM tensor '{param['name']}' must be {param['dtype']}{list(param['kernel_shape'])}, "
                    f"got {dtype}{list(shape)}"
                )
            return value
        if value.shape != tuple(param["shape"]) or value.dtype != numpy_dtype(param["dtype"]):
            raise LibraryError(
                f"{self.name}: '{param['name']}' must be {param['dtype']} of shape {tuple(param['shape'])}, "
                f"got {value.dtype} of shape {value.shape}"
            )
        if param.get("layout"):
            value = layout_from_dict(param["layout"]).pack(value)
        return tvm_compat.to_device([np.ascontiguousarray(value)], self.device)[0]


class Library:
    def __init__(self, path: str | Path):
        root = Path(path)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise LibraryError(f"{root} is not a Heron library (no manifest.json)")
        manifest = self.read_manifest(manifest_path)
        if manifest.get("heron_library", 0) > FORMAT:
            raise LibraryError(f"{root} has library format {manifest['heron_library']}, newer than this Heron reads ({FORMAT})")
        have = cpu_flags()
        for entry in manifest["kernels"]:
            missing = sorted(set(entry.get("requires_cpu_flags", [])) - have)
            if missing:
                raise LibraryError(
                    f"{root}: kernel {entry['workload_key']} was built for a CPU with {', '.join(missing)}, "
                    f"which this one lacks (built on: {entry['target_info'].get('cpu', '?')}); re-export it on this machine"
                )
        for entry in manifest["kernels"]:  # e.g. ask the OS for the AMX tile registers
            try:
                process.prepare(entry.get("process_setup", []))
            except HeronError as exc:
                raise LibraryError(f"{root}: kernel {entry['workload_key']} cannot run in this process: {exc}") from None
        self.path, self.manifest = root, manifest
        self.kernels: dict[str, Kernel] = {e["workload_key"]: Kernel(e, root) for e in manifest["kernels"]}

    @staticmethod
    def read_manifest(path: Path) -> dict:
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(manifest, dict) or not isinstance(manifest.get("kernels"), list):
                raise ValueError("expected an object with a list of kernels")
            for n, entry in enumerate(manifest["kernels"]):
                missing = ENTRY_KEYS - set(entry) if isinstance(entry, dict) else ENTRY_KEYS
                if missing:
                    raise ValueError(f"kernel {n} lacks {', '.join(sorted(missing))}")
        except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise LibraryError(f"{path} cannot be read: {exc}") from None
        return manifest

    def __getitem__(self, workload_key: str) -> Kernel:
        if workload_key not in self.kernels:
            raise LibraryError(f"no kernel {workload_key} in {self.path} (it has: {', '.join(self.kernels)})")
        return self.kernels[workload_key]

    def find(self, op: str | None = None, layer: str | None = None, **shape: int) -> Kernel:
        """The kernel of operator ``op`` whose shape parameters include ``shape``, or, with
        ``layer``, the kernel of that layer (or source node) of an exported network."""
        if layer is not None:
            key = self.manifest.get("layers", {}).get(layer)
            if key is None:
                raise LibraryError(f"no layer '{layer}' in {self.path} (exported with heron export --network)")
            return self[key]
        for entry in self.manifest["kernels"]:
            if entry["op"] == op and all(entry["shape"].get(k) == v for k, v in shape.items()):
                return self.kernels[entry["workload_key"]]
        raise LibraryError(f"no {op} kernel with {shape} in {self.path}")

    def __repr__(self) -> str:
        return f"<Library {self.path}: {len(self.kernels)} kernels>"


def load_library(path: str | Path) -> Library:
    return Library(path)
