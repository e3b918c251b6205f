"""One network pass of an inference protocol: precision, tiling and self-ensemble around a network.

Every *network pass* is ``net`` optionally wrapped, from the inside out, by

1. precision: float32, or bfloat16 autocast (``precision: bf16``, or ``auto`` on a device that runs
   bf16 natively: :mod:`denoise.ops.precision`), results back in float32;
2. tiling (:mod:`denoise.ops.tiling`): tiles of ``tile_size`` pixels overlapping by
   ``tile_overlap``, origins aligned to the network's size multiple and the phase stride 2
   (:func:`network_alignment`);
3. self-ensemble x8 (:mod:`denoise.ops.ensemble`) with ``ensemble: pass``: flips and rotations
   of the whole pass input.

Self-ensemble sits outside the tiling so that each transformed image is tiled on its own aligned
grid, which keeps it exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from denoise.ops.ensemble import TRANSFORMS, self_ensemble
from denoise.ops.precision import inference_precision
from denoise.ops.settings import InferenceSettings
from denoise.ops.tiling import tile_count, tiled_apply


@runtime_checkable
class SizedNetwork(Protocol):
    """A network of ``denoise.nets`` (or a module running one): it takes any size and pads to
    ``size_multiple`` inside, so tiles must start on that multiple to see what the whole image sees."""

    size_multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


# A plain function of a tensor (no size multiple) is a network too: it takes any size as it is.
NetworkFunction = SizedNetwork | Callable[[torch.Tensor], torch.Tensor]


def network_alignment(net: NetworkFunction) -> int:
    """The multiple tile origins need: the network's ``size_multiple`` and the phase stride 2."""
    return math.lcm(net.size_multiple if isinstance(net, SizedNetwork) else 1, 2)


class NetworkPass:
    """One network pass of the protocol: precision, tiling and self-ensemble around ``net``."""

    def __init__(
        self,
        net: NetworkFunction,
        settings: InferenceSettings,
        tile: int | None,
        align: int,
        progress: Callable[[int], None] | None = None,
    ):
        self.net, self.settings, self.tile, self.align, self.progress = net, settings, tile, align, progress

    def _precise(self, x: torch.Tensor) -> torch.Tensor:
        if inference_precision(self.settings.precision, x.device.type)[0] == "bf16":
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                return self.net(x).float()
        return self.net(x)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        return tiled_apply(self._precise, x, self.tile, self.settings.tile_overlap, self.align, self.progress)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.settings.ensemble == "pass":
            return self_ensemble(self._tiled, x)
        return self._tiled(x)

    def calls(self, batch: int, height: int, width: int) -> int:
        """Network calls this pass makes on a (batch, C, height, width) input."""
        overlap = self.settings.tile_overlap
        per_transform = [tile_count(height, width, self.tile, overlap, self.align, batch)]
        if self.settings.ensemble == "pass":  # odd quarter turns swap height and width
            per_transform.append(tile_count(width, height, self.tile, overlap, self.align, batch))
            return TRANSFORMS // 2 * sum(per_transform)
        return per_transform[0]
