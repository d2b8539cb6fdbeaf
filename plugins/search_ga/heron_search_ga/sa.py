"""``sa``: simulated annealing guided by the cost model.

Each member of the population is a chain; a step changes one knob to a random value of its
domain (invalid moves are rejected) and is accepted with the Metropolis rule on the
predicted score: always if better, else with probability exp(delta / T), where delta is
measured in standard deviations of the population's scores and T cools geometrically from
``temperature`` by ``cooling`` per sweep.
"""

from __future__ import annotations

import math

from pydantic import Field

from heron_core.space import Point
from heron_search_ga.common import EvolutionParams, EvolutionSearcher


class SAParams(EvolutionParams):
    cooling: float = Field(0.7, gt=0, le=1)


class SASearcher(EvolutionSearcher):
    params: SAParams

    def evolve(self, population: list[Point], walk: int) -> list[Point]:
        temperature = self.params.temperature * self.params.cooling**walk
        names = list(self.space.knobs)
        steps = []
        for x in population:
            knob = self.space.knobs[self.rng.choice(names)]
            steps.append({**x, knob.name: self.rng.choice(knob.values)})
        moves = [y if ok else x for x, y, ok in zip(population, steps, self.space.valid_many(steps))]
        before = self.cost_model.predict(population)
        after = self.cost_model.predict(moves)
        scale = float(before.std()) or 1.0
        states = []
        for x, y, s0, s1 in zip(population, moves, before, after):
            accept = s1 >= s0 or self.rng.random() < math.exp((s1 - s0) / scale / temperature)
            states.append(y if accept else x)
        return states

    def merge(self, population: list[Point], children: list[Point]) -> list[Point]:
        return children  # the chains move on; no elitism
