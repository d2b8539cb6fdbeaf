"""conv1d: 1-D convolution, NCW activations x KCS weights -> NKQ (stride, zero padding, dilation)."""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from heron_core.ops.convolution import Convolution, ConvShape


class Conv1dShape(ConvShape):
    spatial = ("W",)
    kernel = ("S",)
    N: PositiveInt
    C: PositiveInt
    W: PositiveInt
    K: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1
    channels_last: bool = False
    groups: PositiveInt = 1
    quiet_defaults = ("groups",)


_wavenet = {"N": 1, "W": 892, "C": 512, "K": 512, "S": 3, "stride": 1}


class Conv1d(Convolution):
    name = "conv1d"
    Shape = Conv1dShape
    default_shape = {"N": 1, "C": 64, "W": 128, "K": 64, "S": 3, "stride": 1, "pad": 1}
    presets = {
        "C1D1": {**_wavenet, "C": 1024, "S": 1},
        "C1D2": {**_wavenet, "K": 1024, "S": 1},
        "C1D3": {**_wavenet, "pad": 4, "dilation": 2},
        "C1D4": {**_wavenet, "pad": 8, "dilation": 4},
        "C1D5": {**_wavenet, "pad": 16, "dilation": 8},
    }
