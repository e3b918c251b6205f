"""The distillation student: the Noise2Noise U-Net (Lehtinen et al., ICML 2018), non-blind.

TBSN (Li, Zhang, Zuo, AAAI 2025) distils its blind-spot teacher into this network: 48 channels,
five 2x2 max-pool levels, LeakyReLU 0.1, nearest up-sampling with skip concatenation (the last
skip is the input image), a linear 1x1 output conv: 1,083,747 parameters at ``in_channels=3``.
Any H, W (reflect-padded to a multiple of 32 inside, cropped back).
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn
from torch.nn import functional as F

from denoise.nets.base import Network, full_precision, network_name
from denoise.rules import checked, integer, non_negative_number


def _conv(in_channels: int, out_channels: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.LeakyReLU(slope, inplace=True))


class UNet(Network):
    """(B, in_channels, H, W) -> (B, in_channels, H, W); ``levels`` max-pools, so inputs are padded to 2**levels."""

    @checked(network_name)
    def __init__(
        self,
        in_channels: int = 3,
        dim: Annotated[int, integer(1)] = 48,
        levels: Annotated[int, integer(1)] = 5,
        negative_slope: Annotated[float, non_negative_number()] = 0.1,
    ):
        super().__init__(in_channels, 2**levels)
        self.levels = levels
        # Encoder: two convs at full resolution, one at each deeper level, a max-pool after each level.
        self.encoder = nn.ModuleList(
            [nn.Sequential(_conv(in_channels, dim, negative_slope), _conv(dim, dim, negative_slope))]
            + [_conv(dim, dim, negative_slope) for _ in range(levels - 1)]
        )
        self.bottleneck = _conv(dim, dim, negative_slope)
        # Decoder, deepest first: nearest up-sampling, concat with the skip, two convs at 2*dim.
        self.decoder = nn.ModuleList()
        for level in range(levels, 0, -1):
            skip = in_channels if level == 1 else dim
            in_dec = (dim if level == levels else 2 * dim) + skip
            self.decoder.append(nn.Sequential(_conv(in_dec, 2 * dim, negative_slope),
                                              _conv(2 * dim, 2 * dim, negative_slope)))
        self.head = nn.Conv2d(2 * dim, in_channels, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.1)
                nn.init.zeros_(module.bias)
        nn.init.kaiming_normal_(self.head.weight, nonlinearity="linear")

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        skips = [h]
        for block in self.encoder:
            h = F.max_pool2d(block(h), 2)
            skips.append(h)
        skips.pop()  # the deepest pooled map feeds the bottleneck, not a skip
        h = self.bottleneck(h)
        for block in self.decoder:
            h = block(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
        return full_precision(self.head, h)
