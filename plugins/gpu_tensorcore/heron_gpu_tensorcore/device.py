"""The GPU's limits, read from the CUDA driver (libcuda, through ctypes: no CUDA Python needed).

Without a usable GPU (no driver, a stub libcuda, no device) the documented limits of sm_90
(H100/H200) are used instead, and ``GpuInfo.source`` says so: spaces can then be built and
kernels compiled for sm_90 on any machine, but not run.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import cache

# CUdevice_attribute values (cuda.h)
_ATTR = {
    "max_threads_per_block": 1,
    "warp_size": 10,
    "max_registers_per_block": 12,
    "sm_count": 16,
    "cc_major": 75,
    "cc_minor": 76,
    "max_shared_per_block_optin": 97,
}


@dataclass(frozen=True)
class GpuInfo:
    name: str
    arch: str  # e.g. sm_90
    max_threads_per_block: int
    warp_size: int
    max_registers_per_block: int
    max_shared_per_block: int  # bytes, the opt-in maximum for dynamic shared memory
    sm_count: int
    source: str  # "device" or why the documented defaults are used

    @property
    def present(self) -> bool:
        return self.source == "device"


# CUDA C Programming Guide, "Technical Specifications per Compute Capability", 9.0; H100 SXM SMs.
SM90 = GpuInfo("no GPU (documented sm_90 limits)", "sm_90", 1024, 32, 65536, 227 * 1024, 132, "")
MAX_REGISTERS_PER_THREAD = 255  # every architecture since sm_35


@cache
def query(ordinal: int = 0) -> GpuInfo:
    try:
        return _from_driver(ordinal)
    except (OSError, AttributeError, RuntimeError) as exc:
        return GpuInfo(**{**SM90.__dict__, "source": f"documented sm_90 limits: {exc}"})


def _from_driver(ordinal: int) -> GpuInfo:
    lib = ctypes.CDLL("libcuda.so.1")

    def check(rc: int, what: str) -> None:
        if rc != 0:
            raise RuntimeError(f"{what} failed (CUresult {rc}): no usable GPU")

    check(lib.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    check(lib.cuDeviceGet(ctypes.byref(dev), ordinal), "cuDeviceGet")
    values = {}
    for key, attr in _ATTR.items():
        v = ctypes.c_int()
        check(lib.cuDeviceGetAttribute(ctypes.byref(v), attr, dev), f"cuDeviceGetAttribute({key})")
        values[key] = v.value
    name = ctypes.create_string_buffer(256)
    check(lib.cuDeviceGetName(name, 256, dev), "cuDeviceGetName")
    return GpuInfo(
        name=name.value.decode(),
        arch=f"sm_{values['cc_major']}{values['cc_minor']}",
        max_threads_per_block=values["max_threads_per_block"],
        warp_size=values["warp_size"],
        max_registers_per_block=values["max_registers_per_block"],
        max_shared_per_block=values["max_shared_per_block_optin"],
        sm_count=values["sm_count"],
        source="device",
    )
