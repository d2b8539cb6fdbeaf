"""Entry point of the ``heron-model-gbdt`` distribution."""

from heron_core import PluginSpec, hookimpl
from heron_model_gbdt.model import GBDTModel, GBDTParams


@hookimpl
def heron_cost_models():
    return [
        PluginSpec(
            "cost_model", "gbdt", GBDTModel, GBDTParams,
            "LightGBM (reg or rank) over knob values and loop-nest features, retrained every round",
        )
    ]
