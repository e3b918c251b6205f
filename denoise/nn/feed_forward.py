"""Feed-forward blocks: TBSN's dilated FFN and Restormer's gated depthwise FFN (GDFN)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nn.fast_layers import PointwiseConv2d


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


class GatedDconvFeedForward(nn.Module):
    """Restormer's GDFN: 1x1 up to two hidden maps, 3x3 depthwise conv, GELU(a) * b, 1x1 down.

    The gate lets one half of the hidden features decide, per pixel and channel, how much of
    the other half passes; the depthwise conv gives it a 3x3 neighbourhood at almost no cost.
    ``dilation`` is the phase stride at full resolution (literal form) and 1 on phase sub-images.
    """

    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    def __init__(self, dim: int, expansion: float = 2.66, dilation: int = 1, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = self.pointwise(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, 3, padding=dilation, dilation=dilation, groups=hidden * 2, bias=bias
        )
        self.project_out = self.pointwise(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content, gate = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(content) * gate)


class FastGatedDconvFeedForward(GatedDconvFeedForward):
    """GDFN whose 1x1 convs are :class:`PointwiseConv2d`, the rest as the reference computes it."""

    pointwise = PointwiseConv2d
