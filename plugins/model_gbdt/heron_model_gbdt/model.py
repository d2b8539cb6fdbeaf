"""GBDTModel: LightGBM trained on every successful measurement so far.

Label: log(1/latency) (higher is faster). ``reg`` regresses it; ``rank`` learns the order
(lambdarank on relevance grades of the label), which is all a searcher needs. Failed
measurements are left out of training (their latency says nothing about speed). Until
``min_samples`` successes exist the model reports ``trained = False`` and searchers explore.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from heron_core.cost_model import CostModel
from heron_core.limits import INT32_MAX, MAX_TRIALS, Population, count
from heron_core.measure import MeasureResult
from heron_core.space import Point


class GBDTParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loss_type: Literal["reg", "rank"] = "reg"
    num_trees: Population = 200
    num_leaves: Population = 31
    learning_rate: float = Field(0.1, gt=0, le=1)
    min_samples: count(MAX_TRIALS) = 8
    seed: count(INT32_MAX, lo=0) = 0


class GBDTModel(CostModel):
    params: GBDTParams

    def __init__(self, params: GBDTParams, space):
        super().__init__(params, space)
        self._booster = None
        self._names: list[str] = []

    @property
    def trained(self) -> bool:
        return self._booster is not None

    def fit(self, results: list[MeasureResult]) -> None:
        import lightgbm as lgb

        ok = [r for r in results if r.ok]
        if len(ok) < self.params.min_samples:
            return
        self._names, x = self.space.features([r.point for r in ok])
        y = -np.log(np.array([r.latency for r in ok]))
        p = self.params
        cfg = {
            "num_leaves": p.num_leaves,
            "learning_rate": p.learning_rate,
            "min_data_in_leaf": 2,
            "min_data_in_bin": 1,
            "verbose": -1,
            "seed": p.seed,
            "deterministic": True,
            "num_threads": 1,
        }
        if p.loss_type == "rank":
            grades = np.floor(30 * (y - y.min()) / max(np.ptp(y), 1e-12)).astype(int)
            cfg |= {"objective": "lambdarank", "label_gain": list(range(31)), "lambdarank_truncation_level": len(y)}
            data = lgb.Dataset(x, grades, group=[len(y)], feature_name=self._names, free_raw_data=False)
        else:
            cfg |= {"objective": "regression"}
            data = lgb.Dataset(x, y, feature_name=self._names, free_raw_data=False)
        self._booster = lgb.train(cfg, data, num_boost_round=p.num_trees)

    def predict(self, points: list[Point]) -> np.ndarray:
        if not self.trained or not points:
            return np.zeros(len(points))
        _, x = self.space.features(points)
        return self._booster.predict(x)

    def knob_importance(self) -> dict[str, float]:
        if not self.trained:
            return {}
        gain = self._booster.feature_importance(importance_type="split")
        return {name: float(g) for name, g in zip(self._names, gain) if name in self.space.knobs}
