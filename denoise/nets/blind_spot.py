"""The blind-spot construction shared by every blind-spot network.

``masked (2s-1)x(2s-1) conv -> phase split (s) -> body -> phase merge``, followed by 1x1 layers
only. The body is an ordinary network run on the s*s phase sub-images stacked in the batch,
so it needs no mask of its own. In the literal form the body runs at full resolution instead,
built with convolutions dilated by s and masked attention; both forms share parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from denoise.nn.forms import check_form
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
