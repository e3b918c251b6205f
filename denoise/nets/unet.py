"""The distillation student: the Noise2Noise U-Net (Lehtinen et al., ICML 2018), non-blind.

TBSN (Li, Zhang, Zuo, AAAI 2025) distils its blind-spot teacher into this network: 48 channels,
five 2x2 max-pool levels, LeakyReLU 0.1, nearest up-sampling with skip concatenation (the last
skip is the input image), a linear 1x1 output conv: 1,083,747 parameters at ``in_ch=3``. Any H, W (reflect-padded to a multiple
of 32 inside, cropped back).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from denoise.ops.padding import crop_to, pad_to_multiple


def _conv(in_ch: int, out_ch: int, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.LeakyReLU(slope, inplace=True))


class UNet(nn.Module):
    """(B, in_ch, H, W) -> (B, in_ch, H, W); ``levels`` max-pools, so inputs are padded to 2**levels."""

    def __init__(self, in_ch: int = 3, dim: int = 48, levels: int = 5, negative_slope: float = 0.1):
        super().__init__()
        self.in_ch, self.levels = in_ch, levels
        self.size_multiple = 2**levels
        # Encoder: two convs at full resolution, one at each deeper level, a max-pool after each level.
        self.encoder = nn.ModuleList(
            [nn.Sequential(_conv(in_ch, dim, negative_slope), _conv(dim, dim, negative_slope))]
            + [_conv(dim, dim, negative_slope) for _ in range(levels - 1)]
        )
        self.bottleneck = _conv(dim, dim, negative_slope)
        # Decoder, deepest first: nearest up-sampling, concat with the skip, two convs at 2*dim.
        self.decoder = nn.ModuleList()
        for level in range(levels, 0, -1):
            skip = in_ch if level == 1 else dim
            in_dec = (dim if level == levels else 2 * dim) + skip
            self.decoder.append(nn.Sequential(_conv(in_dec, 2 * dim, negative_slope),
                                              _conv(2 * dim, 2 * dim, negative_slope)))
        self.head = nn.Conv2d(2 * dim, in_ch, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.1)
                nn.init.zeros_(module.bias)
        nn.init.kaiming_normal_(self.head.weight, nonlinearity="linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(f"UNet: expected {self.in_ch} input channels (in_ch), got {x.shape[1]}")
        height, width = x.shape[-2:]
        h = pad_to_multiple(x, self.size_multiple, mode="reflect")
        skips = [h]
        for block in self.encoder:
            h = F.max_pool2d(block(h), 2)
            skips.append(h)
        skips.pop()  # the deepest pooled map feeds the bottleneck, not a skip
        h = self.bottleneck(h)
        for block in self.decoder:
            h = block(torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], dim=1))
        return crop_to(self.head(h), height, width)
