"""DirectContext: CUDA-core schedules for the operators without a GEMM structure (no Tensor Cores):
depthwise convolutions (dep, conv2d with groups = C) and the row reductions mean and var.

Every block of the operator's own compute (read in its logical layouts) is one kernel:

- an element-wise or per-output reduction block (a depthwise convolution's taps): its output
  elements fused, split into [blockIdx.x] [threadIdx.x: ``threads``] [``per_thread`` unrolled],
  the taps summed in a register (a local cache written back once);
- a row reduction (mean, var: sums over the last axis): ``rows`` rows per block on threadIdx.y,
  the reduction split over ``threads`` lanes of threadIdx.x and combined by TVM's cross-thread
  all-reduce (warp shuffles), ``serial`` elements per lane summed first.

Rules (CP-SAT): threads x rows within the device's threads per block; per_thread and rows no larger
than the work there is; threads at most the reduction's extent rounded up to a warp.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from heron_core.operator import padded
from heron_core.space import Point, SearchSpace
from heron_core.target import Context

if TYPE_CHECKING:
    from heron_core.task import Task
    from heron_gpu_tensorcore.target import TensorCoreTarget

THREADS = (32, 64, 128, 256, 512, 1024)
PER_THREAD = (1, 2, 4, 8)
ROWS = (1, 2, 4, 8)
WARP = 32
DIRECT_OPS = ("dep", "mean", "var")


def is_direct(task: Task) -> bool:
    """Operators this context schedules: dep, mean, var and depthwise conv2d."""
    return task.op.name in DIRECT_OPS or bool(getattr(task.op.shape, "depthwise", False))


class DirectContext(Context):
    def __init__(self, target: TensorCoreTarget):
        self.target = target

    def _func(self, task: Task):
        from tvm import te

        op = task.op
        args, read = [], {}
        for t in op.inputs:
            ph = te.placeholder(t.shape, t.dtype, name=t.name)
            args.append(ph)
            read[t.name] = padded(lambda *i, ph=ph: ph[i], t)
        return te.create_prim_func([*args, op.compute(read)])

    def _row_reduction(self, task: Task) -> bool:
        return task.op.name in ("mean", "var")

    def define(self, task: Task, space: SearchSpace) -> None:
        m = space.model
        limit = self.target.gpu.max_threads_per_block
        threads = space.knob("threads", [t for t in THREADS if t <= limit], "threads per block along x")
        space.knob("unroll", (0, 16, 64), "auto-unroll max step")
        if self._row_reduction(task):
            rows_n, reduce_n = task.op.shape.M, task.op.shape.N
            rows = space.knob("rows", [r for r in ROWS if r <= rows_n], "rows per block (threadIdx.y)")
            m.AddMultiplicationEquality(prod := space.var(1, limit * max(ROWS)), [threads, rows])
            m.Add(prod <= limit)
            m.Add(threads <= max(WARP, -(-reduce_n // WARP) * WARP))
            return
        outputs = math.prod(task.op.output.shape)
        per = space.knob("per_thread", [p for p in PER_THREAD if p <= outputs], "outputs per thread (unrolled)")
        # at least one full block of work: no block of idle threads
        m.AddMultiplicationEquality(work := space.var(1, limit * max(PER_THREAD)), [threads, per])
        m.Add(work <= max(WARP, outputs))

    def features(self, task: Task, point: Point) -> dict[str, float]:
        return {k: float(v) for k, v in point.items()}

    def tolerance(self, task: Task) -> tuple[float, float]:
        if task.spec.out_dtype == "float16" and not self._row_reduction(task):
            taps = math.prod(task.op.shape.kernel_extents)
            return (1e-2, 4e-2 * math.sqrt(taps))  # fp16 accumulation, as the tensor-core template's
        return (1e-3, 1e-3)

    def apply(self, task: Task, point: Point):
        import tvm
        from tvm import s_tir

        sch = s_tir.Schedule(tvm.IRModule({"main": self._func(task)}))
        blocks = [b for b in sch.get_child_blocks(sch.get_sblock("root"))]
        names = [sch.get(b).name_hint for b in blocks]
        for name in names:
            block = sch.get_sblock(name)
            if not sch.get(block).iter_vars:
                continue
            if self._row_reduction(task) and any(iv.iter_type == 2 for iv in sch.get(block).iter_vars):
                _row_reduce(sch, block, point)
            elif any(iv.iter_type == 2 for iv in sch.get(block).iter_vars):
                _per_output_reduce(sch, block, point)
            else:
                _elementwise(sch, block, point)
        return sch.mod


def _bind_flat(sch, loop, point: Point, per_thread: int) -> None:
    bx, tx, inner = sch.split(loop, [None, point["threads"], per_thread])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    if per_thread > 1:
        sch.unroll(inner)
    if point["unroll"]:
        sch.annotate(bx, "pragma_auto_unroll_max_step", point["unroll"])
        sch.annotate(bx, "pragma_unroll_explicit", 1)


def _elementwise(sch, block, point: Point) -> None:
    loops = sch.get_loops(block)
    _bind_flat(sch, sch.fuse(*loops) if len(loops) > 1 else loops[0], point, point.get("per_thread", 1))


def _per_output_reduce(sch, block, point: Point) -> None:
    """One thread per output element (``per_thread`` of them): its taps summed in a register."""
    spatial = [lp for lp, iv in zip(sch.get_loops(block), sch.get(block).iter_vars) if iv.iter_type == 0]
    local = sch.cache_write(block, 0, "local")
    fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    bx, tx, inner = sch.split(fused, [None, point["threads"], point["per_thread"]])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    sch.reverse_compute_at(local, tx)
    for loop in sch.get_loops(block)[3:]:
        sch.unroll(loop)
    if point["unroll"]:
        sch.annotate(bx, "pragma_auto_unroll_max_step", point["unroll"])
        sch.annotate(bx, "pragma_unroll_explicit", 1)


def _row_reduce(sch, block, point: Point) -> None:
    """``rows`` rows per block on threadIdx.y, each row's sum split over ``threads`` lanes (all-reduce)."""
    row, red = sch.get_loops(block)
    by, ty = sch.split(row, [None, point["rows"]])
    _, tx = sch.split(red, [None, point["threads"]])
    sch.bind(by, "blockIdx.x")
    sch.bind(ty, "threadIdx.y")
    sch.bind(tx, "threadIdx.x")
    if point["unroll"]:
        sch.annotate(by, "pragma_auto_unroll_max_step", point["unroll"])
        sch.annotate(by, "pragma_unroll_explicit", 1)
