"""What the evolutionary searchers share: parameters with the original Heron's defaults,
model-guided population bookkeeping, temperature selection and the epsilon-greedy batch."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heron_core.limits import MAX_POPULATION, Population, count
from heron_core.searcher import Searcher
from heron_core.space import Point, point_key


class EvolutionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pop_num: Population = 200
    """Population size, and fresh random valid points added each round."""
    iter_walks: Population = 5
    """Generations (or annealing sweeps) per round."""
    history_topk: count(MAX_POPULATION, lo=0) = 32
    """Best measured points seeded back into each round's population."""
    select_num: Population = 100
    """Parents per generation."""
    temperature: float = Field(0.6, gt=0)
    """Selection temperature (lower = greedier)."""
    epsilon: float = Field(0.6, ge=0, le=1)
    """Share of each batch taken greedily by prediction; the rest is drawn at random."""


class EvolutionSearcher(Searcher):
    """Round structure of the original: refresh the population (survivors re-predicted,
    history top-k, fresh samples), ``evolve`` it, then choose the batch."""

    params: EvolutionParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.population: list[Point] = []

    def ask(self, n: int) -> list[Point]:
        if not self.cost_model.trained:  # cold start: exploration
            return self.space.sample(n, self.rng, exclude=self.history)
        p = self.params
        measured = sorted((r for r in self.history.values() if r.ok), key=lambda r: r.latency)
        pool = self.population + [r.point for r in measured[: p.history_topk]]
        pool += self.space.sample(p.pop_num, self.rng)
        self.population = self.best(pool, p.pop_num)
        visited = {point_key(x): x for x in self.population}
        for walk in range(p.iter_walks):
            children = self.evolve(self.population, walk)
            visited |= {point_key(c): c for c in children}
            self.population = self.merge(self.population, children)
        fresh = [x for k, x in visited.items() if k not in self.history]
        return self.epsilon_greedy(fresh, n)

    def evolve(self, population: list[Point], walk: int) -> list[Point]:
        """One generation: new valid points from ``population``."""
        raise NotImplementedError

    def merge(self, population: list[Point], children: list[Point]) -> list[Point]:
        """The next population (default: the best ``pop_num`` of both, by prediction)."""
        return self.best(population + children, self.params.pop_num)

    # --- helpers ---------------------------------------------------------------------------
    def best(self, points: list[Point], k: int) -> list[Point]:
        unique = list({point_key(x): x for x in points}.values())
        scores = self.cost_model.predict(unique)
        order = np.argsort(-scores, kind="stable")
        return [unique[i] for i in order[:k]]

    def select(self, points: list[Point], k: int) -> list[Point]:
        """``k`` points drawn with probability softmax(standardised prediction / temperature)."""
        if not points:
            return []
        weights = _softmax(self.cost_model.predict(points), self.params.temperature)
        picks = self._np_rng().choice(len(points), size=k, replace=True, p=weights)
        return [points[i] for i in picks]

    def epsilon_greedy(self, candidates: list[Point], n: int) -> list[Point]:
        """Top ``epsilon`` share by prediction, the rest by temperature selection among the
        others; topped up with fresh samples if the candidates run short."""
        ranked = self.best(candidates, len(candidates))
        greedy = math.ceil(self.params.epsilon * n)
        batch, rest = ranked[:greedy], ranked[greedy:]
        while len(batch) < n and rest:
            pick = self.select(rest, 1)[0]
            batch.append(pick)
            rest = [x for x in rest if x is not pick]
        if len(batch) < n:
            exclude = set(self.history) | {point_key(x) for x in batch}
            batch += self.space.sample(n - len(batch), self.rng, exclude=exclude)
        return batch

    def _np_rng(self) -> np.random.Generator:
        return np.random.default_rng(self.rng.randrange(2**32))


def _softmax(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = (scores - scores.mean()) / (scores.std() or 1.0)
    w = np.exp((z - z.max()) / temperature)
    return w / w.sum()
