"""HCANet's multi-scale feed-forward network (MSFN).

A 1x1 conv expands the input into one hidden map per dilation rate; each map goes through its
own 3x3 depthwise conv at that rate (1, 2, 3: receptive fields 3, 5, 7), and the branches are
combined by gating, ``GELU(b1) * b2 * b3``, so that each scale modulates the others pixel by
pixel; a 1x1 conv projects back. Everything outside the depthwise convs is per pixel, so the
block is blind wherever its convs read only the pixel's phase: on phase sub-images as is, at
full resolution with every rate multiplied by the phase stride (the registry does that).

:class:`FastMultiScaleFeedForward` (the ``fast`` kernels) computes the same numbers with its 1x1
convs as :class:`denoise.nn.fast_layers.PointwiseConv2d`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nn.fast_layers import PointwiseConv2d
from denoise.rules import checked, integer, list_of


class MultiScaleFeedForward(nn.Module):
    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    @checked("MultiScaleFeedForward: ")
    def __init__(
        self, dim: int, expansion: float = 2.66,
        dilations: Annotated[Sequence[int], list_of(integer(1), non_empty=True)] = (1, 2, 3), bias: bool = False,
    ):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = self.pointwise(dim, hidden * len(dilations), 1, bias=bias)
        self.branches = nn.ModuleList(
            nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d, groups=hidden, bias=bias) for d in dilations
        )
        self.project_out = self.pointwise(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.project_in(x).chunk(len(self.branches), dim=1)
        first, *others = (branch(part) for branch, part in zip(self.branches, parts))
        gated = F.gelu(first)
        for scale in others:
            gated = gated * scale
        return self.project_out(gated)


class FastMultiScaleFeedForward(MultiScaleFeedForward):
    """MSFN whose 1x1 convs are :class:`PointwiseConv2d`, the branches as the reference computes them."""

    pointwise = PointwiseConv2d
