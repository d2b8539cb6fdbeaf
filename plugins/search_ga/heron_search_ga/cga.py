"""``cga``: Heron's constraint-based genetic algorithm.

Crossover works on the CSP, not on values: a child keeps, for every *key* knob but one, the
value of one of its two parents (the CP-SAT model picks which), the remaining key knob is left
free (mutation) and so are the non-key knobs; solving the CSP then yields a child that
satisfies every rule by construction. Key knobs are the ``crossover_key_ratio`` share of
knobs that the cost model splits on most (the paper's choice; the original code's later
random choice made CGA no better than random search).
"""

from __future__ import annotations

import math

from pydantic import Field

from heron_core.space import Point
from heron_search_ga.common import EvolutionParams, EvolutionSearcher


class CGAParams(EvolutionParams):
    crossover_key_ratio: float = Field(0.2, gt=0, le=1)
    """Share of the knobs treated as key variables."""


class CGASearcher(EvolutionSearcher):
    params: CGAParams

    def key_knobs(self) -> list[str]:
        knobs = list(self.space.knobs)
        count = max(2, math.ceil(self.params.crossover_key_ratio * len(knobs)))
        importance = self.cost_model.knob_importance()
        keys = sorted((k for k in knobs if importance.get(k, 0) > 0), key=lambda k: -importance[k])[:count]
        rest = [k for k in knobs if k not in keys]
        self.rng.shuffle(rest)  # the model used fewer knobs than asked for: fill up at random
        return keys + rest[: count - len(keys)]

    def evolve(self, population: list[Point], walk: int) -> list[Point]:
        keys = self.key_knobs()
        parents = self.select(population, self.params.select_num)
        crossings = []
        for _ in range(self.params.pop_num):
            a, b = self.rng.choice(parents), self.rng.choice(parents)
            mutated = self.rng.choice(keys)
            crossings.append({k: sorted({a[k], b[k]}) for k in keys if k != mutated})
        return [c for c in self.space.complete_many(crossings, self.rng) if c is not None]
