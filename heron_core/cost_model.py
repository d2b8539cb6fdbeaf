"""Cost models predict which points are fast, so searchers measure the promising ones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel

from heron_core.space import Point

if TYPE_CHECKING:
    from heron_core.measure import MeasureResult
    from heron_core.space import SearchSpace


class CostModel(ABC):
    def __init__(self, params: BaseModel, space: SearchSpace):
        self.params = params
        self.space = space

    @property
    @abstractmethod
    def trained(self) -> bool:
        """Whether predictions carry information yet (cold start: they do not)."""

    @abstractmethod
    def fit(self, results: list[MeasureResult]) -> None:
        """Retrain on every measurement so far."""

    @abstractmethod
    def predict(self, points: list[Point]) -> np.ndarray:
        """A score per point, higher = predicted faster."""

    def knob_importance(self) -> dict[str, float]:
        """How much each knob drives the predictions (empty when unknown)."""
        return {}


class NoCostModel(CostModel):
    """``none``: no model; searchers fall back to exploration."""

    trained = False

    def fit(self, results):
        pass

    def predict(self, points):
        return np.zeros(len(points))
