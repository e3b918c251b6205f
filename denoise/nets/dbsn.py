"""DBSN: AP-BSN's two-branch dilated blind-spot network ("DBSNl", Lee et al., CVPR 2022).

1x1 stem, then two blind-spot branches (3x3 masked conv with stride-2 phases, and 5x5 masked
conv with stride-3 phases), each with 9 residual dilated blocks, fused by 1x1 convs.
About 3.66M parameters with the default 128 channels.

Borders: the literal form is the official network exactly, for any size: it pads nothing, and
every convolution zero-pads its own input. The phase form needs sides that are multiples of 6
(the phase strides 2 and 3) and zero-pads the input image to them before the stem, whose bias
makes the padded pixels non-zero; so on other sizes the two forms differ near the bottom and
right borders (both exactly blind), and agree exactly on multiples of 6.
"""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch import nn

from denoise.nets.base import Network, full_precision, network_name
from denoise.nets.blind_spot import BlindSpotBranch
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.nn.forms import FORMS
from denoise.nn.kernels import pick, resolve_kernels
from denoise.rules import checked, integer, list_of, one_of


class DilatedResidualBlock(nn.Module):
    """x + 1x1(ReLU(3x3 conv dilated by the phase stride)); dilation 1 on phase sub-images.

    ``pointwise`` is the class of the 1x1 conv (``nn.Conv2d``, or its fast twin).
    """

    def __init__(self, channels: int, dilation: int, pointwise: type[nn.Conv2d] = nn.Conv2d):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.act = nn.ReLU(inplace=True)
        self.mix = pointwise(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(self.act(self.conv(x)))


def branch_body(channels: int, num_blocks: int, dilation: int, pointwise: type[nn.Conv2d]) -> nn.Sequential:
    return nn.Sequential(
        nn.ReLU(inplace=True),
        pointwise(channels, channels, 1),
        nn.ReLU(inplace=True),
        pointwise(channels, channels, 1),
        nn.ReLU(inplace=True),
        *(DilatedResidualBlock(channels, dilation, pointwise) for _ in range(num_blocks)),
        pointwise(channels, channels, 1),
        nn.ReLU(inplace=True),
    )


def fusion_tail(fused: int, channels: int, out_channels: int, pointwise: type[nn.Conv2d]) -> nn.Sequential:
    """The 1x1 convs that fuse the branches: ``fused`` -> ``channels`` -> ... -> ``out_channels``."""
    return nn.Sequential(
        pointwise(fused, channels, 1),
        nn.ReLU(inplace=True),
        pointwise(channels, channels // 2, 1),
        nn.ReLU(inplace=True),
        pointwise(channels // 2, channels // 2, 1),
        nn.ReLU(inplace=True),
        pointwise(channels // 2, out_channels, 1),
    )


class DBSN(Network):
    """Blind-spot network (B, in_channels, H, W) -> (B, in_channels, H, W); any H, W (zero-padded inside).

    ``kernels`` (``denoise.nn.kernels``): the class of every 1x1 conv, ``nn.Conv2d`` (``reference``)
    or :class:`PointwiseConv2d` (``fast``); ``auto``, the default, is fast for the phase form and
    reference for the literal form, the official network. The same parameters in every choice.
    """

    blindness = "pixel"

    # Zeros, not reflection: a reflected pixel changes its phase mod 3 and the 5x5 branch
    # would read it next to its original.
    padding_mode = "constant"

    @checked(network_name)
    def __init__(
        self,
        in_channels: int = 3,
        channels: Annotated[int, integer(1)] = 128,
        num_blocks: Annotated[int, integer(1)] = 9,
        # A stride of 1 would mask the whole 1x1 kernel: the branch would see nothing.
        phase_strides: Annotated[tuple[int, ...], list_of(integer(2), non_empty=True)] = (2, 3),
        form: Annotated[str, one_of(*FORMS)] = "phase",
        kernels: str = "auto",
    ):
        # The phase split needs whole phases; the literal form takes any size.
        super().__init__(in_channels, math.lcm(*phase_strides) if form == "phase" else 1)
        self.form, self.kernels = form, resolve_kernels(kernels, form, "DBSN")
        pointwise = pick(self.kernels, nn.Conv2d, PointwiseConv2d)
        self.stem = nn.Sequential(pointwise(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.branches = nn.ModuleList(
            BlindSpotBranch(
                channels, channels,
                branch_body(channels, num_blocks, stride if form == "literal" else 1, pointwise),
                stride, form, bias=True,
            )
            for stride in phase_strides
        )
        self.tail = fusion_tail(channels * len(phase_strides), channels, in_channels, pointwise)

    def output_layer(self) -> nn.Conv2d:
        return self.tail[-1]

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.cat([branch(x) for branch in self.branches], dim=1)
        *hidden, output = self.tail
        for layer in hidden:
            x = layer(x)
        return full_precision(output, x)
