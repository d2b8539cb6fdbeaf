"""Storage layouts a kernel may want for an argument, as data: the runner applies them before a
measurement and an exported library applies them before a call, without any plugin installed."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict


class BlockedLayout(BaseModel):
    """(..., R, ..., L, ...) -> (L/lanes, *others, R/reduce, lanes, reduce), C-contiguous: each
    micro-kernel step reads one contiguous lanes x reduce tile (e.g. VNNI's 16 x 4 bytes).
    L and R need not divide: they are padded with zeros up to the next multiple of ``lanes`` and
    ``reduce`` (packing happens once, ahead of the calls, so the padding costs the calls nothing).
    ``others_first``: (*others, L/lanes, R/reduce, lanes, reduce) instead, so that one lane
    block's whole reduction is contiguous (e.g. AMX tiles spanning several lane blocks)."""

    model_config = ConfigDict(frozen=True)
    kind: str = "blocked"
    reduce_dim: int
    lane_dim: int
    lanes: int
    reduce: int
    others_first: bool = False

    def shape(self, logical: tuple[int, ...]) -> tuple[int, ...]:
        others = [logical[d] for d in range(len(logical)) if d not in (self.reduce_dim, self.lane_dim)]
        lanes, red = -(-logical[self.lane_dim] // self.lanes), -(-logical[self.reduce_dim] // self.reduce)
        if self.others_first:
            return (*others, lanes, red, self.lanes, self.reduce)
        return (lanes, *others, red, self.lanes, self.reduce)

    def pack(self, arr: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] * arr.ndim
        widths[self.lane_dim] = (0, -arr.shape[self.lane_dim] % self.lanes)
        widths[self.reduce_dim] = (0, -arr.shape[self.reduce_dim] % self.reduce)
        arr = np.pad(arr, widths)
        others = [d for d in range(arr.ndim) if d not in (self.reduce_dim, self.lane_dim)]
        moved = np.moveaxis(arr, [self.lane_dim, *others, self.reduce_dim], range(arr.ndim))
        lanes, red = moved.shape[0], moved.shape[-1]
        blocked = moved.reshape(lanes // self.lanes, self.lanes, *moved.shape[1:-1], red // self.reduce, self.reduce)
        n = blocked.ndim  # axes: L/l, l, *others, R/r, r  ->  L/l, *others, R/r, l, r (or *others, L/l, R/r, l, r)
        order = [*range(2, n - 2), 0] if self.others_first else [0, *range(2, n - 2)]
        return np.ascontiguousarray(blocked.transpose([*order, n - 2, 1, n - 1]))


class TapBlockedLayout(BaseModel):
    """A depthwise convolution's weight (K, 1, *kernel) -> (ceil(K/lanes), ceil(T/reduce), lanes, reduce),
    T = the kernel's taps in row-major order, zero-padded: lane l of block b holds output channel
    b*lanes + l, its ``reduce`` consecutive taps contiguous (a no-broadcast VNNI dot per lane)."""

    model_config = ConfigDict(frozen=True)
    kind: str = "taps"
    lanes: int
    reduce: int

    def shape(self, logical: tuple[int, ...]) -> tuple[int, ...]:
        taps = int(np.prod(logical[1:]))
        return (-(-logical[0] // self.lanes), -(-taps // self.reduce), self.lanes, self.reduce)

    def pack(self, arr: np.ndarray) -> np.ndarray:
        blocks, groups, lanes, red = self.shape(arr.shape)
        flat = np.zeros((blocks * lanes, groups * red), arr.dtype)
        flat[: arr.shape[0], : arr[0].size] = arr.reshape(arr.shape[0], -1)
        return np.ascontiguousarray(flat.reshape(blocks, lanes, groups, red).transpose(0, 2, 1, 3))


LAYOUTS = {"blocked": BlockedLayout, "taps": TapBlockedLayout}


def layout_from_dict(data: dict) -> BlockedLayout | TapBlockedLayout:
    """A layout as ``model_dump`` wrote it (an exported library's manifest)."""
    return LAYOUTS[data.get("kind", "blocked")].model_validate(data)
