"""Per-process set-up that the kernels of some targets need before they run, by name, so that
an exported library can ask for it without the target's plugin (``Target.process_setup``).

``linux_amx_tiledata``: Linux (5.16+) hands out the AMX tile registers only to a process that asked
for them: ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``; without it, the first tile
instruction kills the process with SIGILL. The permission is process-wide and asking twice is harmless.
"""

from __future__ import annotations

import ctypes
import os
import platform
from typing import Callable, Iterable

from heron_core.errors import HeronError

SYS_ARCH_PRCTL = 158  # x86-64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18


class ProcessSetupError(HeronError):
    """This process cannot be prepared to run the kernels (the OS refused, or an unknown set-up)."""

    exit_code = 2


def request_amx_tiledata() -> None:
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ProcessSetupError(
            f"AMX tile data can only be requested on Linux x86-64, not {platform.system()} {platform.machine()}"
        )
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_ARCH_PRCTL, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0:
        err = ctypes.get_errno()
        raise ProcessSetupError(
            f"the OS refused this process the AMX tile registers: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) "
            f"failed with {os.strerror(err)} (needs Linux 5.16+ and a CPU with AMX)"
        )


SETUPS: dict[str, Callable[[], None]] = {"linux_amx_tiledata": request_amx_tiledata}
_done: set[str] = set()


def prepare(names: Iterable[str]) -> None:
    """Run each named set-up once per process."""
    for name in names:
        if name in _done:
            continue
        if name not in SETUPS:
            raise ProcessSetupError(
                f"unknown process set-up '{name}' (this Heron knows: {', '.join(SETUPS)}); upgrade heron-core"
            )
        SETUPS[name]()
        _done.add(name)
