"""What a runner is given and what it returns."""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass, field

from heron_core.space import Point


class Status(str, enum.Enum):
    OK = "ok"
    BUILD_ERROR = "build_error"
    BUILD_TIMEOUT = "build_timeout"
    RUN_ERROR = "run_error"
    RUN_TIMEOUT = "run_timeout"
    WRONG_RESULT = "wrong_result"
    CRASH = "crash"


@dataclass
class MeasureResult:
    point: Point
    status: Status
    costs: list[float] = field(default_factory=list)  # seconds per call, one per repeat
    error: str = ""
    build_s: float = 0.0
    run_s: float = 0.0
    nodes: dict[str, str] = field(default_factory=dict)  # distributed runners: {"build": node id, "measure": node id}

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def latency(self) -> float:
        """Median seconds per call (inf for a failure)."""
        return statistics.median(self.costs) if self.ok and self.costs else float("inf")
