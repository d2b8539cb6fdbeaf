"""``ga``: a plain genetic algorithm on knob values (the ablation baseline for CGA).

One-point crossover over the knob list, one knob mutated to a random value of its domain;
children that break a rule are rejected (the constraints are only checked, never used).
"""

from __future__ import annotations

from heron_core.space import Point
from heron_search_ga.common import EvolutionSearcher


class GASearcher(EvolutionSearcher):
    def evolve(self, population: list[Point], walk: int) -> list[Point]:
        names = list(self.space.knobs)
        parents = self.select(population, self.params.select_num)
        children = []
        for _ in range(self.params.pop_num):
            a, b = self.rng.choice(parents), self.rng.choice(parents)
            cut = self.rng.randrange(1, len(names))
            child = {k: (a if i < cut else b)[k] for i, k in enumerate(names)}
            knob = self.space.knobs[self.rng.choice(names)]
            child[knob.name] = self.rng.choice(knob.values)
            children.append(child)
        return [c for c, ok in zip(children, self.space.valid_many(children)) if ok]
