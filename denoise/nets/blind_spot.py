"""The blind-spot construction shared by every blind-spot network.

``masked (2s-1)x(2s-1) conv -> phase split (s) -> body -> phase merge``, followed by 1x1 layers
only. The body is an ordinary network run on the s*s phase sub-images stacked in the batch,
so it needs no mask of its own. In the literal form the body runs at full resolution instead,
built with convolutions dilated by s and masked attention; both forms share parameters.

:class:`OneBranchBlindSpotNet` is the whole network of TBSN and the blind-spot HCANet: one
branch, then a 1x1 head back to the input's channels.
"""

from __future__ import annotations

import torch
from torch import nn

from denoise.nets.base import Network, full_precision
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.nn.forms import check_form
from denoise.nn.kernels import pick
from denoise.nn.masked_conv import CentreMaskedConv2d
from denoise.ops.phase import phase_merge, phase_split


class BlindSpotBranch(nn.Module):
    """Masked conv, then ``body`` on the phase sub-images (or at full resolution, literal form)."""

    def __init__(self, in_channels: int, channels: int, body: nn.Module, phase_stride: int, form: str,
                 bias: bool = False):
        super().__init__()
        self.phase_stride, self.form = phase_stride, check_form(form)
        self.embed = CentreMaskedConv2d(in_channels, channels, phase_stride, bias=bias)
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.embed(x)
        if self.form == "literal":
            return self.body(features)
        return phase_merge(self.body(phase_split(features, self.phase_stride)), self.phase_stride)


class OneBranchBlindSpotNet(Network):
    """``branch`` (masked conv, ``body`` on the phase sub-images), then a 1x1 ``head``.

    ``body`` maps ``channels`` to ``body.out_channels``; ``kernels`` (resolved) picks the class of
    the head. ``phase_stride`` is 2 in both networks, the one stride that reflect padding keeps
    blind (:attr:`Network.padding_mode`).
    """

    blindness = "pixel"

    def __init__(self, in_channels: int, size_multiple: int, channels: int, body: nn.Module, form: str,
                 kernels: str, phase_stride: int):
        super().__init__(in_channels, size_multiple)
        self.branch = BlindSpotBranch(in_channels, channels, body, phase_stride, form)
        self.head = pick(kernels, nn.Conv2d, PointwiseConv2d)(body.out_channels, in_channels, 1, bias=False)

    def output_layer(self) -> nn.Conv2d:
        return self.head

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        # Reflect padding copies pixels onto positions of their own parity, which the masked
        # conv never reads for the same phase: the padded network stays exactly blind.
        return full_precision(self.head, self.branch(x))
