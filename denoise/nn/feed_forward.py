"""Feed-forward blocks."""

from __future__ import annotations

import torch
from torch import nn


class DilatedFeedForward(nn.Module):
    """TBSN's FFN: 3x3 conv, GELU, 3x3 conv, both dilated by the phase stride.

    At full resolution the dilation keeps every tap on the pixel's own phase; on phase
    sub-images (``dilation=1``) the same weights are a plain 3x3 conv.
    """

    def __init__(self, dim: int, expansion: float = 1.0, dilation: int = 1, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.conv_in = nn.Conv2d(dim, hidden, 3, padding=dilation, dilation=dilation, bias=bias)
        self.act = nn.GELU()
        self.conv_out = nn.Conv2d(hidden, dim, 3, padding=dilation, dilation=dilation, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.act(self.conv_in(x)))
