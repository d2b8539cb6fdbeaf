"""dep: depthwise 2-D convolution (the original Heron's dep: conv2d with groups = C, K = C x multiplier)."""

from __future__ import annotations

from pydantic import NonNegativeInt, PositiveInt

from heron_core.ops.conv2d import Conv2d
from heron_core.ops.convolution import ConvShape


class DepShape(ConvShape):
    spatial = ("H", "W")
    kernel = ("R", "S")
    N: PositiveInt
    C: PositiveInt
    H: PositiveInt
    W: PositiveInt
    R: PositiveInt = 3
    S: PositiveInt = 3
    stride: PositiveInt = 1
    pad: NonNegativeInt = 1
    dilation: PositiveInt = 1
    channels_last: bool = False
    multiplier: PositiveInt = 1
    quiet_defaults = ("multiplier",)

    @property
    def K(self) -> int:
        return self.C * self.multiplier

    @property
    def groups(self) -> int:
        return self.C


def _mobilenet_v2(c: int, hw: int, stride: int) -> dict[str, int]:
    return {"N": 1, "C": c, "H": hw, "W": hw, "R": 3, "S": 3, "stride": stride, "pad": 1}


class Dep(Conv2d):
    name = "dep"
    Shape = DepShape
    default_shape = _mobilenet_v2(32, 28, 1)
    # MobileNetV2's depthwise layers (224 x 224 input), as conv2d with groups = C
    presets = {
        f"DEP{i}": _mobilenet_v2(*case)
        for i, case in enumerate(
            [
                (32, 112, 1),
                (96, 112, 2),
                (144, 56, 1),
                (144, 56, 2),
                (192, 28, 1),
                (192, 28, 2),
                (384, 14, 1),
                (576, 14, 1),
                (576, 14, 2),
                (960, 7, 1),
            ],
            start=1,
        )
    }
