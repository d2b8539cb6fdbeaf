"""dil: dilated 2-D convolution (conv2d whose kernel taps are ``dilation`` apart; default 2)."""

from __future__ import annotations

from pydantic import PositiveInt

from heron_core.ops.conv2d import Conv2d, Conv2dShape


class DilShape(Conv2dShape):
    dilation: PositiveInt = 2


class Dil(Conv2d):
    name = "dil"
    Shape = DilShape
    default_shape = {**Conv2d.default_shape, "dilation": 2, "pad": 2}
    presets = {name.replace("C2D", "D"): {**shape, "dilation": 2} for name, shape in Conv2d.presets.items()}
