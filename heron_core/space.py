"""SearchSpace: the schedule template's knobs and the rules between them, as a CP-SAT model.

Every point the space hands out satisfies all constraints: searchers never see an invalid
schedule. A point is a ``{knob name: value}`` dict; derived variables (products, footprints)
are solved but not part of the point.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

    from heron_core.target import Context
    from heron_core.task import Task

Point = dict[str, int]
Partial = Mapping[str, int | Sequence[int]]
_T = TypeVar("_T")


def point_key(point: Mapping[str, int]) -> str:
    """Canonical text of a point: the identity used for de-duplication and records."""
    return json.dumps(dict(sorted(point.items())), separators=(",", ":"))


def divisors(n: int) -> list[int]:
    """The divisors of ``n`` >= 1, ascending (O(sqrt n))."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


@dataclass
class Knob:
    name: str
    values: list[int]
    doc: str
    var: cp_model.IntVar


class SearchSpace:
    def __init__(self, task: Task, context: Context | None = None):
        from ortools.sat.python import cp_model  # here, not at the top: workers that only build or run never need it

        self.task = task
        self.context = context or task.context
        self.model = cp_model.CpModel()
        self.knobs: dict[str, Knob] = {}
        self._n = 0
        self._local = threading.local()  # one scratch CpModel per solving thread
        self.threads = len(os.sched_getaffinity(0))
        """Threads that solve batches of points (CP-SAT releases the GIL while it solves)."""
        self._feature_rows: dict[str, list[float]] = {}
        self._feature_names: list[str] | None = None
        self.context.define(task, self)
        if not self.knobs:
            raise ValueError(f"{type(self.context).__name__} declared no knobs for {task.describe()}")
        if self._solve({}, seed=0) is None:
            from heron_core.errors import ConfigError

            raise ConfigError(f"no valid schedule exists for {task.describe()}: the constraints are unsatisfiable")

    # --- building (used by Contexts) -------------------------------------------------------
    def knob(self, name: str, values: Iterable[int], doc: str = "") -> cp_model.IntVar:
        """A tunable choice among ``values``."""
        from ortools.sat.python import cp_model

        values = sorted(set(int(v) for v in values))
        if name in self.knobs:
            raise ValueError(f"knob '{name}' declared twice")
        var = self.model.NewIntVarFromDomain(cp_model.Domain.FromValues(values), name)
        self.knobs[name] = Knob(name, values, doc, var)
        return var

    def var(self, lo: int, hi: int, name: str = "") -> cp_model.IntVar:
        """A derived (non-knob) integer variable."""
        self._n += 1
        return self.model.NewIntVar(lo, hi, name or f"_v{self._n}")

    def equals(self, var: cp_model.IntVar, value: int) -> cp_model.IntVar:
        """A Boolean variable true exactly when ``var == value`` (for rules that hold under one knob value)."""
        b = self.model.NewBoolVar(f"{var.Name()}_is_{value}")
        self.model.Add(var == value).OnlyEnforceIf(b)
        self.model.Add(var != value).OnlyEnforceIf(b.Not())
        return b

    def product(self, factors: Sequence[cp_model.IntVar | int], hi: int, name: str = "") -> cp_model.IntVar | int:
        """A variable equal to the product of ``factors`` (chained, CP-SAT multiplies pairs)."""
        const = 1
        vars_ = []
        for f in factors:
            if isinstance(f, int):
                const *= f
            else:
                vars_.append(f)
        if not vars_:
            return const
        acc = vars_[0]
        for i, f in enumerate(vars_[1:]):
            nxt = self.var(1, hi, f"{name}_p{i}" if name else "")
            self.model.AddMultiplicationEquality(nxt, [acc, f])
            acc = nxt
        if const == 1:
            return acc
        out = self.var(1, hi * const, name)
        self.model.Add(out == const * acc)
        return out

    def split(self, name: str, extent: int, parts: int, doc: str = "") -> list[cp_model.IntVar]:
        """Knobs ``name0..name{parts-1}`` whose product is ``extent`` (a multi-level tiling)."""
        ds = divisors(extent)
        factors = [self.knob(f"{name}{i}", ds, doc) for i in range(parts)]
        prod = self.product(factors, extent)
        self.model.Add(prod == extent)
        return factors

    def split_among(
        self, name: str, extents: Sequence[int], choice: cp_model.IntVar, parts: int, doc: str = ""
    ) -> list[cp_model.IntVar]:
        """Knobs ``name0..name{parts-1}`` whose product is ``choice``, a variable among ``extents`` (a multi-level
        tiling of an extent the tuner picks, such as a padded one)."""
        ds = sorted(set().union(*(divisors(e) for e in extents)))
        factors = [self.knob(f"{name}{i}", ds, doc) for i in range(parts)]
        self.model.Add(self.product(factors, max(extents)) == choice)
        return factors

    # --- using ---------------------------------------------------------------------------
    def _copy(self) -> cp_model.CpModel:
        """The model, copied into one reused CpModel: ``CpModel.clone`` re-creates the wrapper's
        deprecated method aliases each time, which cost more than the solve itself."""
        from ortools.sat.python import cp_model

        scratch = getattr(self._local, "model", None)
        if scratch is None:
            scratch = self._local.model = cp_model.CpModel()
        scratch.proto.copy_from(self.model.proto)
        scratch.rebuild_constant_map()
        return scratch

    def _solve(
        self, fixed: Mapping[str, int | Sequence[int]], seed: int, order: Sequence[str] | None = None
    ) -> Point | None:
        """Solve the model with ``fixed`` knobs (a value or a list of allowed values each);
        with ``order``, branch on the knobs in that order, halving each domain at random."""
        from ortools.sat.python import cp_model

        model = self._copy()
        for name, value in fixed.items():
            if name not in self.knobs:
                raise KeyError(f"unknown knob '{name}' (knobs: {', '.join(self.knobs)})")
            values = [value] if isinstance(value, int) else list(value)
            model.AddLinearExpressionInDomain(self._var(model, name), cp_model.Domain.FromValues(values))
        if order is not None:
            model.AddDecisionStrategy([self._var(model, n) for n in order], cp_model.CHOOSE_FIRST, cp_model.SELECT_RANDOM_HALF)
        solver = cp_model.CpSolver()
        p = solver.parameters
        p.num_workers = 1
        p.random_seed = seed % (2**31)
        p.max_time_in_seconds = 10.0
        p.catch_sigint_signal = False  # else CP-SAT takes Ctrl-C for itself and leaves SIGINT at SIG_DFL after
        if order is not None:
            p.search_branching = cp_model.FIXED_SEARCH
            p.cp_model_presolve = False
        status = solver.Solve(model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        return {n: int(solver.Value(k.var)) for n, k in self.knobs.items()}  # same proto indices in the copy

    def _var(self, model: cp_model.CpModel, name: str) -> cp_model.IntVar:
        return model.GetIntVarFromProtoIndex(self.knobs[name].var.Index())

    def complete(self, partial: Partial, rng: random.Random | None = None) -> Point | None:
        """A random valid point agreeing with ``partial`` (a value, or a list of allowed
        values, per knob), or None if no valid point does."""
        return self.complete_many([partial], rng)[0]

    def complete_many(self, partials: Sequence[Partial], rng: random.Random | None = None) -> list[Point | None]:
        """``complete`` of each partial, solved on ``threads`` threads: the same points, in the
        same order, as completing them one by one with the same ``rng``."""
        rng = rng or random.Random()
        jobs = []
        for partial in partials:
            order = list(self.knobs)
            rng.shuffle(order)
            jobs.append((partial, rng.randrange(2**31), order))
        return self._map(lambda job: self._solve(*job), jobs)

    def valid_many(self, points: Sequence[Mapping[str, int]]) -> list[bool]:
        """``is_valid`` of each point, solved on ``threads`` threads."""
        return self._map(self.is_valid, points)

    def _map(self, fn: Callable[..., _T], items: Sequence) -> list[_T]:
        if self.threads < 2 or len(items) < 2:
            return [fn(x) for x in items]
        return list(_solver_pool(self.threads).map(fn, items))

    def sample(self, n: int, rng: random.Random | None = None, exclude: Iterable[str] = ()) -> list[Point]:
        """Up to ``n`` distinct random valid points not in ``exclude`` (point keys).

        Each solve branches on the knobs in a fresh random order, halving each domain at
        random, so points spread over the space rather than clustering at the solver's
        favourite corner; fewer than ``n`` come back only when the space runs out.
        """
        rng = rng or random.Random()
        seen = set(exclude)
        out: list[Point] = []
        misses = 0
        while len(out) < n and misses < 50 + 5 * n:
            # as many solves as points still missing: the draws of one-by-one sampling, in parallel
            for point in self.complete_many([{}] * min(n - len(out), 50 + 5 * n - misses), rng):
                key = point_key(point) if point else None
                if key is None or key in seen:
                    misses += 1
                    continue
                seen.add(key)
                out.append(point)
        return out

    def upgraded(self, point: Mapping[str, int]) -> dict[str, int]:
        """A recorded point with the knobs added since it was recorded at their first value (what a template
        did before it made the choice a knob: ``row_extent``'s first value is the extent its rule picked)."""
        return {**{n: k.values[0] for n, k in self.knobs.items() if n not in point}, **point}

    def is_valid(self, point: Mapping[str, int]) -> bool:
        if set(point) != set(self.knobs):
            return False
        if any(v not in self.knobs[k].values for k, v in point.items()):
            return False
        return self._solve(point, seed=0) is not None

    def features(self, points: Sequence[Point]) -> tuple[list[str], np.ndarray]:
        """Feature names and a (points x features) matrix: the knob values and the Context's
        loop-nest quantities, log2-scaled (tile sizes matter by ratio, not difference).
        Rows are cached per point: searchers ask for the same points round after round."""
        rows = [self._feature_row(p) for p in points]
        names = self._feature_names or list(self.knobs)
        return names, np.asarray(rows, dtype=np.float64).reshape(len(points), len(names))

    def _feature_row(self, point: Point) -> list[float]:
        key = point_key(point)
        row = self._feature_rows.get(key)
        if row is None:
            extra = self.context.features(self.task, point)
            if self._feature_names is None:
                # a loop-nest quantity named like a knob gets its own column name (LightGBM refuses duplicates)
                self._feature_names = [*self.knobs, *(f"nest_{n}" if n in self.knobs else n for n in extra)]
            values = [point[k] for k in self.knobs] + list(extra.values())
            row = self._feature_rows[key] = np.log2(1.0 + np.asarray(values, dtype=np.float64)).tolist()
        return row

    def random_point(self, rng: random.Random) -> Point:
        """Each knob uniformly from its own domain, ignoring the rules (usually invalid)."""
        return {name: rng.choice(k.values) for name, k in self.knobs.items()}

    def apply(self, point: Point):
        return self.context.apply(self.task, point)

    def describe(self) -> str:
        lines = [f"{len(self.knobs)} knobs, {len(self.model.Proto().constraints)} constraints"]
        for k in self.knobs.values():
            shown = k.values if len(k.values) <= 12 else k.values[:6] + ["..."] + k.values[-3:]
            lines.append(f"  {k.name}: {shown}  {k.doc}")
        return "\n".join(lines)


@functools.cache
def _solver_pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="heron-csp")
