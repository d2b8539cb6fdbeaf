"""What this CPU can do, read at run time: our machines differ (Intel with VNNI and AMX,
AMD Zen 4 with VNNI, older parts without either)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class CPUInfo:
    model: str
    flags: frozenset[str]
    cores: int
    l1d_bytes: int
    l2_bytes: int

    @property
    def has_vnni(self) -> bool:
        return "avx512_vnni" in self.flags

    @property
    def has_amx(self) -> bool:
        return "amx_int8" in self.flags


def _cache_bytes(level: int, default: int) -> int:
    root = Path("/sys/devices/system/cpu/cpu0/cache")
    for index in sorted(root.glob("index*")):
        try:
            lvl = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if lvl == level and kind in ("Data", "Unified"):
            mult = {"K": 1024, "M": 1024**2}.get(size[-1], 1)
            return int(size.rstrip("KM")) * mult
    return default


@lru_cache(maxsize=1)
def host_cpu() -> CPUInfo:
    model, flags = "unknown", frozenset()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model == "unknown":
                model = value.strip()
            elif key == "flags":
                flags = frozenset(value.split())
                break
    except OSError:
        pass
    return CPUInfo(
        model=model,
        flags=flags,
        cores=len(os.sched_getaffinity(0)),
        l1d_bytes=_cache_bytes(1, 32 * 1024),
        l2_bytes=_cache_bytes(2, 1024 * 1024),
    )


# /proc/cpuinfo flag -> (LLVM feature, an LLVM CPU that has it and everything older Xeons have)
_NEWER_CPU = [("amx_int8", "amx-int8", "sapphirerapids"), ("avx512_vnni", "avx512vnni", "icelake-server")]


def llvm_host_cpu() -> str:
    """LLVM's name for this CPU, unless it lacks a feature the kernel reports: LLVM detects by model
    number, and a virtual machine may show an older model (seen: 'rocketlake', family 6 model 167,
    with AMX flags), so the name would deny the AMX or VNNI instructions the CPU has."""
    from tvm.target import codegen

    name = str(codegen.llvm_get_system_cpu())
    flags = host_cpu().flags
    for flag, feature, newer in _NEWER_CPU:
        if flag in flags and feature not in llvm_cpu_features(name):
            return newer
    return name


def llvm_cpu_features(mcpu: str) -> set[str]:
    import tvm
    from tvm.target import codegen

    return {str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": mcpu}))}


def llvm_cpu_has_vnni(mcpu: str) -> bool:
    return "avx512vnni" in llvm_cpu_features(mcpu)
