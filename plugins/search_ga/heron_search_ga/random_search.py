"""``random``: uniform knob values, invalid ones rejected. Shows what the constraints buy:
most uniformly drawn schedules break a rule (tile factors that do not multiply to the
extent, tiles that overflow the registers or caches)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from heron_core.limits import Population
from heron_core.searcher import Searcher
from heron_core.space import Point, point_key


class RandomParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_draws_per_point: Population = 200
    """Give up on a slot after this many invalid draws (the batch comes back short)."""


class RandomSearcher(Searcher):
    params: RandomParams

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.draws = 0
        self.invalid = 0

    def ask(self, n: int) -> list[Point]:
        out: dict[str, Point] = {}
        budget = n * self.params.max_draws_per_point
        while len(out) < n and budget > 0:
            budget -= 1
            self.draws += 1
            p = self.space.random_point(self.rng)
            key = point_key(p)
            if key in self.history or key in out:
                continue
            if self.space.is_valid(p):
                out[key] = p
            else:
                self.invalid += 1
        return list(out.values())
