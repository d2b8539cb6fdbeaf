"""conv2d: 2-D convolution, NCHW activations x KCRS weights -> NKPQ (stride, zero padding, dilation)."""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from heron_core.ops.convolution import Convolution, ConvShape


class Conv2dShape(ConvShape):
    spatial = ("H", "W")
    kernel = ("R", "S")
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1
    channels_last: bool = False
    groups: PositiveInt = 1
    quiet_defaults = ("groups",)
    bias: bool = False
    relu: bool = False


_resnet = {"N": 1, "H": 56, "W": 56, "C": 64, "K": 64, "R": 3, "S": 3, "stride": 1, "pad": 1}


class Conv2d(Convolution):
    name = "conv2d"
    Shape = Conv2dShape
    default_shape = {"N": 1, "C": 64, "H": 14, "W": 14, "K": 64, "R": 3, "S": 3, "stride": 1, "pad": 1}
    presets = {
        "C2D1": _resnet,
        "C2D2": {**_resnet, "R": 1, "S": 1, "pad": 0},
        "C2D3": {**_resnet, "H": 28, "W": 28, "C": 128, "K": 128},
        "C2D4": {**_resnet, "H": 28, "W": 28, "C": 128, "K": 256, "R": 1, "S": 1, "stride": 2, "pad": 0},
        "C2D5": {**_resnet, "H": 14, "W": 14, "C": 256, "K": 256},
        "C2D6": {**_resnet, "H": 14, "W": 14, "C": 256, "K": 512, "R": 1, "S": 1, "stride": 2, "pad": 0},
    }
