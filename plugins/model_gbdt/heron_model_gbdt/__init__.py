"""Heron cost model ``gbdt``: LightGBM over knob values and loop-nest features."""
