"""Searchers propose points to measure (ask) and learn from the results (tell)."""

from __future__ import annotations

import random
from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict

from heron_core.cost_model import CostModel
from heron_core.limits import Population
from heron_core.measure import MeasureResult
from heron_core.space import Point, SearchSpace, point_key


class Searcher(ABC):
    def __init__(self, space: SearchSpace, params: BaseModel, cost_model: CostModel, seed: int):
        self.space = space
        self.params = params
        self.cost_model = cost_model
        self.rng = random.Random(seed)
        self.history: dict[str, MeasureResult] = {}

    @abstractmethod
    def ask(self, n: int) -> list[Point]:
        """Up to ``n`` points, none measured before."""

    def tell(self, results: list[MeasureResult]) -> None:
        for r in results:
            self.history[point_key(r.point)] = r


class ConstrainedRandomParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    candidates_per_trial: Population = 8
    """With a trained cost model: sample this many valid points per slot, measure the best-predicted."""


class ConstrainedRandomSearcher(Searcher):
    """``crand``: random valid points from the constraint space, ranked by the cost model
    once it has learned something (the original Heron's CRAND)."""

    params: ConstrainedRandomParams

    def ask(self, n: int) -> list[Point]:
        if not self.cost_model.trained:
            return self.space.sample(n, self.rng, exclude=self.history)
        pool = self.space.sample(n * self.params.candidates_per_trial, self.rng, exclude=self.history)
        scores = self.cost_model.predict(pool)
        ranked = sorted(range(len(pool)), key=lambda i: -scores[i])
        return [pool[i] for i in ranked[:n]]
