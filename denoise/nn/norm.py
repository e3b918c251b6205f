"""Layer normalisation over the channels of a (B, C, H, W) map, per pixel."""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over channels at each pixel.

    ``bias=False`` is Restormer's and TBSN's bias-free variant: ``x / sqrt(var + eps) * weight``,
    without subtracting the mean. Statistics are per pixel, so the norm is blind-spot safe.
    """

    def __init__(self, dim: int, bias: bool = False, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = x.var(dim=1, keepdim=True, unbiased=False)
        if self.bias is None:
            return x * torch.rsqrt(var + self.eps) * self.weight[:, None, None]
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]
