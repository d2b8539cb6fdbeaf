import random

import numpy as np
import pytest
from heron_model_gbdt.model import GBDTModel, GBDTParams

from heron_core.measure import MeasureResult, Status
from heron_core.space import SearchSpace
from heron_core.task import PluginRef, Task, TaskSpec


@pytest.fixture(scope="module")
def space():
    ref = PluginRef(name="dlboost", params={"num_cores": 2})
    return SearchSpace(Task(TaskSpec(target=ref, op="gemm", shape={"M": 256, "K": 256, "N": 256},
                                     in_dtype="int8", out_dtype="int32")))


def synthetic(points):
    """Latency that depends on two knobs only: the model has to find them."""
    return [MeasureResult(p, Status.OK, [1e-3 * (1 + p["k1"]) / (1 + p["i3"])]) for p in points]


@pytest.mark.parametrize("loss", ["reg", "rank"])
def test_learns_the_order_and_the_knobs_that_matter(space, loss):
    model = GBDTModel(GBDTParams(loss_type=loss), space)
    train = space.sample(80, random.Random(0))
    assert not model.trained and not model.predict(train).any()  # cold start: no opinion
    model.fit(synthetic(train) + [MeasureResult(train[0], Status.BUILD_ERROR)])
    assert model.trained
    test = space.sample(40, random.Random(1))
    truth = -np.log([r.latency for r in synthetic(test)])
    pred = model.predict(test)
    assert np.corrcoef(np.argsort(np.argsort(truth)), np.argsort(np.argsort(pred)))[0, 1] > 0.7
    top = sorted(model.knob_importance().items(), key=lambda kv: -kv[1])[:3]
    assert {"k1", "i3"} & {name for name, _ in top}


def test_waits_for_enough_successes(space):
    model = GBDTModel(GBDTParams(min_samples=8), space)
    model.fit(synthetic(space.sample(5, random.Random(2))))
    assert not model.trained


def test_features_include_loop_nest_quantities(space):
    names, x = space.features(space.sample(3, random.Random(3)))
    assert {"l1_bytes", "l2_bytes", "acc_registers", "parallel_chunks", "i3", "unroll"} <= set(names)
    assert x.shape == (3, len(names)) and np.isfinite(x).all()
