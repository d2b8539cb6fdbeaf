"""A fake libcuda for GPU-less machines: TVM's CUDA runtime library must load for tvm.compile to
run nvcc at all (otherwise it silently builds a module that cannot launch). The stub (built here
from /work/shared/gpu/cuda_stub.c's symbol list) is preloaded only where no real driver loads."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

STUB_SYMBOLS = (
    "cuDeviceGetName",
    "cuFuncSetAttribute",
    "cuLaunchKernelEx",
    "cuModuleGetFunction",
    "cuModuleLoadData",
    "cuModuleUnload",
    "cuTensorMapEncodeTiled",
)
STUB_C = "\n".join(f"int {s}(void) {{ return 100; }}" for s in STUB_SYMBOLS) + """
int cuGetErrorName(int e, const char **s) { (void)e; *s = "STUB_NO_DEVICE"; return 0; }
int cuGetErrorString(int e, const char **s) { (void)e; *s = "stub libcuda: no device"; return 0; }
"""
CUDA_LIB_DIRS = ("/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib")


def _real_driver() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1").cuInit
        return True
    except (OSError, AttributeError):
        return False


def _preload_stub() -> str:
    """Build the stub and load it (with its soname, so that libtvm_runtime_cuda's dependency on
    libcuda.so.1 resolves to it) and the toolkit's libcudart; must happen before TVM is imported."""
    if _real_driver():
        return "driver"
    if shutil.which("gcc") is None:
        return "no gcc to build the stub libcuda"
    d = tempfile.mkdtemp(prefix="heron-cudastub-")
    with open(os.path.join(d, "cuda_stub.c"), "w") as f:
        f.write(STUB_C)
    lib = os.path.join(d, "libcuda.so.1")
    subprocess.run(["gcc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", lib, os.path.join(d, "cuda_stub.c")], check=True)
    ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    for lib_dir in CUDA_LIB_DIRS:
        if os.path.exists(os.path.join(lib_dir, "libcudart.so.13")):
            ctypes.CDLL(os.path.join(lib_dir, "libcudart.so.13"), mode=ctypes.RTLD_GLOBAL)
            return "stub"
    return "libcudart.so.13 not found"


_RUNTIME = _preload_stub() if "tvm" not in sys.modules else "TVM was imported before this conftest"


@pytest.fixture(scope="session")
def cuda_runtime():
    """Skip unless nvcc exists and TVM's CUDA runtime loaded (real driver or the stub)."""
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed: cannot compile CUDA")
    import tvm

    if "tvm_runtime_cuda" not in tvm.base._LOADED_LIBS:
        pytest.skip(f"libtvm_runtime_cuda.so did not load ({_RUNTIME})")
    os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")


@pytest.fixture
def cuda_build(cuda_runtime):
    """Schedule a point, compile it for sm_90, return the CUDA source."""
    from heron_core import tvm_compat

    def build(task, point) -> str:
        exe = tvm_compat.build(task.context.apply(task, point), task.target.tvm_target(), task.target.pass_config())
        return exe.mod.imports[0].inspect_source()

    return build
