"""Targets (a kind of hardware) and their Contexts (the schedule template + rules for it)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from heron_core.layout import BlockedLayout

if TYPE_CHECKING:
    from heron_core.operator import TensorSpec
    from heron_core.space import Point, SearchSpace
    from heron_core.task import Task


class Context(ABC):
    """Turns a task into a schedule template.

    ``define`` declares knobs and the constraints between them on a SearchSpace (needs
    OR-Tools); ``apply`` instantiates the template for one point (TVM only, so build workers
    and exported libraries never import the solver).
    """

    @abstractmethod
    def define(self, task: Task, space: SearchSpace) -> None: ...

    @abstractmethod
    def apply(self, task: Task, point: Point):
        """Return the scheduled ``tvm.IRModule`` for ``point``."""

    def features(self, task: Task, point: Point) -> dict[str, float]:
        """Quantities of the scheduled loop nest (tile sizes per level, footprints, parallel
        chunks, ...) computed from the point without lowering it; cost models learn from them."""
        return {}

    def arg_layouts(self, task: Task) -> dict[str, BlockedLayout]:
        """Arguments the kernel takes in another layout than the operator's logical one
        (weights packed ahead of time, as inference libraries do with constant weights)."""
        return {}

    def tolerance(self, task: Task) -> tuple[float, float]:
        """(rtol, atol) within which a floating-point output must match the reference (numpy's
        allclose); a target whose arithmetic is less precise than the reference's widens it."""
        return (1e-3, 1e-3)

    def constant_args(self, task: Task) -> list[TensorSpec]:
        """The operator's constants that the kernel takes as arguments after the inputs
        (materialized once ahead of the calls, like packed weights) instead of computing them."""
        return []

    def kernel_args(self, task: Task, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Logical numpy inputs -> the kernel's arguments (inputs in order, the constants it takes,
        then a zeroed output)."""
        layouts = self.arg_layouts(task)
        out = task.op.output
        logical = [(t.name, arrays[t.name]) for t in task.op.inputs]
        logical += [(t.name, task.op.constant_value(t.name)) for t in self.constant_args(task)]
        args = [layouts[name].pack(a) if name in layouts else a for name, a in logical]
        return [*args, np.zeros(out.shape, out.dtype)]


class Target(ABC):
    """A hardware target: what TVM compiles for, where kernels run, which Context schedules."""

    name: str
    default_dtypes: tuple[str, str] | None = None
    """(in_dtype, out_dtype) for a config that names none (the config's own default, int8 -> int32, otherwise)."""

    def __init__(self, params: BaseModel):
        self.params = params

    @abstractmethod
    def check_host(self) -> None:
        """Raise :class:`heron_core.errors.TargetUnavailable` if kernels cannot run here."""

    @abstractmethod
    def tvm_target(self) -> dict[str, Any]:
        """The TVM target as a dict (TVM 0.27 rejects CLI strings)."""

    @abstractmethod
    def context(self) -> Context: ...

    def context_for(self, task: Task) -> Context:
        """The Context that schedules ``task``: a target may keep templates for particular
        operators (e.g. depthwise convolutions) next to its general one."""
        return self.context()

    def check_task(self, task: Task) -> None:
        """Raise :class:`heron_core.errors.ConfigError` for a task this target cannot tune."""

    def device(self):
        from heron_core.tvm_compat import device

        return device(self.device_type())

    def device_type(self) -> str:
        """TVM's name of the device kernels run on ("cpu", "cuda"), locally or in an RPC session."""
        kind = self.tvm_target()["kind"]
        return "cpu" if kind == "llvm" else kind

    def pass_config(self) -> dict[str, Any]:
        """TVM PassContext options for building this target's kernels."""
        return {}

    def runtime_env(self) -> dict[str, str]:
        """Environment for processes that run kernels (e.g. the thread-pool size)."""
        return {}

    def key(self) -> str:
        """Identifies the hardware in records: results from another CPU are not reused."""
        return self.name

    def required_cpu_flags(self) -> list[str]:
        """/proc/cpuinfo flags a machine needs to run kernels built for this target."""
        return []

    def process_setup(self) -> list[str]:
        """Named per-process set-ups (:mod:`heron_core.process`) a process needs before it runs
        this target's kernels, e.g. asking Linux for the AMX tile registers."""
        return []

    def prepare_process(self) -> None:
        """Make this process able to run the kernels; called once per worker process that runs
        them (the runner's measuring worker, ``heron export``); a library does the same from its manifest."""
        from heron_core import process

        process.prepare(self.process_setup())

    def info(self) -> dict[str, Any]:
        return {"target": self.name, "tvm_target": self.tvm_target()}

    def peak_gops(self) -> float | None:
        """The most GOPS (1e9 ops/s, the operators' op counts) this target's kernels can reach on this
        machine, for the reports' % of peak; None when unknown."""
        return None
