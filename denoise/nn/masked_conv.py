"""Centre-masked convolution: the only place a blind-spot network needs a mask."""

from __future__ import annotations

import torch
from torch import nn


class CentreMaskedConv2d(nn.Conv2d):
    """A (2s-1)x(2s-1) convolution whose centre tap is zero for every (in, out) pair.

    After it, the feature at p reads only pixels whose phase (position mod s) differs from p's.
    The mask is applied functionally at every call (``weight * mask``), so the stored weight is
    never edited and optimiser state, EMA and checkpoints see ordinary parameters.
    """

    def __init__(self, in_channels: int, out_channels: int, phase_stride: int = 2, bias: bool = False):
        kernel = 2 * phase_stride - 1
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2, bias=bias)
        mask = torch.ones(1, 1, kernel, kernel)
        mask[..., kernel // 2, kernel // 2] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)
