"""Bounds on what a user may ask for: tensors this machine can hold, and counts that scale work.

A shape whose buffers cannot exist here, or a count that would take days, is refused with one
clear message before anything is built or written (``check_tensors`` runs in ``config.plan``, and
without the memory test in every ``Task``; the counts are pydantic bounds, so errors name the field)."""

from __future__ import annotations

import math
import os
from typing import Annotated

from pydantic import Field

from heron_core.errors import ConfigError

INT32_MAX = 2**31 - 1
"""TVM indexes buffers with int32 by default: no extent, and no flattened index, may exceed it."""

# Counts that scale work linearly (or worse); far above any useful value, far below a hang.
MAX_TRIALS = 1_000_000
MAX_BATCH = 4096
MAX_CASES = 10_000  # workloads in one config
MAX_POPULATION = 10_000  # searcher populations, candidates, draws, generations
MAX_WORKERS = 1024  # processes a runner may start
MAX_REPEATS = 100_000  # timing repetitions
MAX_TIMEOUT_S = 86_400.0
MAX_SEED = 2**63 - 1  # stored in SQLite (a signed 64-bit integer)


def count(hi: int, lo: int = 1) -> type[int]:
    """An integer field bounded to ``lo..hi``."""
    return Annotated[int, Field(ge=lo, le=hi)]  # type: ignore[return-value]


Trials = count(MAX_TRIALS)
BatchSize = count(MAX_BATCH)
Population = count(MAX_POPULATION)
Workers = count(MAX_WORKERS)
Repeats = count(MAX_REPEATS)
Seed = count(MAX_SEED, lo=0)
Timeout = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S)]


def memory_bytes() -> int:
    """Memory this machine can give a process now: MemAvailable, else the physical memory."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 2**63


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def check_tensors(op, what: str, check_memory: bool = True) -> None:
    """Refuse an operator whose tensors cannot be indexed, or (``check_memory``) held in this machine's
    available memory (ConfigError naming the first reason)."""
    from heron_core.operator import numpy_dtype

    total = 0
    for t in op.tensors():
        for shape in dict.fromkeys((t.shape, t.padded_shape)):
            if any(n < 1 for n in shape):
                raise ConfigError(f"{what}: tensor {t.name} would have the empty shape {list(shape)}")
            big = [n for n in shape if n > INT32_MAX]
            if big:
                raise ConfigError(f"{what}: tensor {t.name} has extent {big[0]:,}, beyond the int32 index range ({INT32_MAX:,})")
            size = math.prod(shape)
            if size > INT32_MAX:
                raise ConfigError(
                    f"{what}: tensor {t.name} {list(shape)} has {size:,} elements, beyond the int32 index range ({INT32_MAX:,})"
                )
        try:
            itemsize = numpy_dtype(t.dtype).itemsize
        except TypeError:
            raise ConfigError(f"{what}: tensor {t.name} has the unknown dtype '{t.dtype}'") from None
        total += math.prod(t.shape) * itemsize
    available = memory_bytes() if check_memory else total
    if total > available:
        raise ConfigError(f"{what}: its tensors need {_gib(total)}, more than the {_gib(available)} of memory available here")
