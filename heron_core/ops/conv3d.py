"""conv3d: 3-D convolution, NCDHW activations x KCTRS weights -> NK(OD)(OH)(OW)."""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from heron_core.ops.convolution import Convolution, ConvShape


class Conv3dShape(ConvShape):
    spatial = ("D", "H", "W")
    kernel = ("T", "R", "S")
    N: PositiveInt
    C: PositiveInt
    D: PositiveInt
    H: PositiveInt
    W: PositiveInt
    K: PositiveInt
    T: PositiveInt
    R: PositiveInt
    S: PositiveInt
    stride: PositiveInt = 1
    pad: NonNegativeInt = 0
    dilation: PositiveInt = 1
    channels_last: bool = False


_c3d = {"N": 1, "D": 8, "H": 56, "W": 56, "C": 64, "K": 64, "T": 3, "R": 3, "S": 3, "stride": 1, "pad": 1}
_pointwise = {"T": 1, "R": 1, "S": 1, "stride": 2, "pad": 0}


class Conv3d(Convolution):
    name = "conv3d"
    Shape = Conv3dShape
    default_shape = {"N": 1, "C": 32, "D": 4, "H": 8, "W": 8, "K": 32, "T": 3, "R": 3, "S": 3, "stride": 1, "pad": 1}
    presets = {
        "C3D1": _c3d,
        "C3D2": {**_c3d, "C": 128, **_pointwise},
        "C3D3": {**_c3d, "D": 4, "H": 28, "W": 28, "C": 128, "K": 128},
        "C3D4": {**_c3d, "D": 4, "H": 28, "W": 28, "C": 256, "K": 128, **_pointwise},
        "C3D5": {**_c3d, "D": 2, "H": 14, "W": 14, "C": 256, "K": 256},
        "C3D6": {**_c3d, "D": 2, "H": 14, "W": 14, "C": 512, "K": 256, **_pointwise},
    }
