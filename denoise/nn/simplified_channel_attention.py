"""NAFNet's attention half: SimpleGate and simplified channel attention (SCA).

From "Simple Baselines for Image Restoration" (Chen, Chu, Zhang, Sun, ECCV 2022), the first half
of the NAFBlock, with no non-linear activation anywhere:

    1x1 conv (C -> 2C) -> 3x3 depthwise conv -> SimpleGate (2C -> C) -> SCA -> 1x1 conv (C -> C)

SimpleGate multiplies the two halves of the channels (the product is the non-linearity); SCA
rescales each channel by a 1x1 conv of its mean over the map: global context for the cost of a
C x C matrix.

The mean is what a blind-spot network must watch. Inside the phase-split body the block runs on
one phase sub-image per batch entry, and every feature there was computed without the input
pixels of that phase (the centre-masked conv reads only other phases), so the mean of an entry
never holds x(p) for any p of that entry: exactly blind. At full resolution (``form="literal"``)
a mean over the whole map would hold p's neighbours, whose features read x(p), so there the block
takes one mean per phase and gives it back to that phase's pixels only. Both forms compute the
same function with the same weights.

:class:`FastSimplifiedChannelAttention` (the ``fast`` kernels) computes the same numbers with its
1x1 convs as :class:`denoise.nn.fast_layers.PointwiseConv2d`.
"""

from __future__ import annotations

import torch
from einops import reduce, repeat
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.nn.kernels import KERNELS
from denoise.nn.registry import BlockSpec, register_block


class SimplifiedChannelAttention(nn.Module):
    """(B, dim, H, W) -> (B, dim, H, W); ``phase_stride`` > 1 only at full resolution (literal form).

    ``expansion`` widens the map before the gate, which halves it again (NAFNet's DW_Expand = 2).
    H and W must be multiples of ``phase_stride`` (a blind-spot network pads to them).
    """

    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    def __init__(self, dim: int, expansion: int = 2, phase_stride: int = 1):
        super().__init__()
        hidden = dim * expansion
        if hidden % 2:
            raise ConfigError(f"SimplifiedChannelAttention: dim * expansion = {hidden} is odd; SimpleGate halves it")
        self.phase_stride = phase_stride
        self.project_in = self.pointwise(dim, hidden, 1)
        # Dilated by the phase stride at full resolution, so every tap stays on the pixel's phase.
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=phase_stride, dilation=phase_stride, groups=hidden)
        self.attention = self.pointwise(hidden // 2, hidden // 2, 1)
        self.project_out = self.pointwise(hidden // 2, dim, 1)

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """SCA's weight for every channel, one set per phase; broadcasts against ``x``."""
        s = self.phase_stride
        weights = self.attention(reduce(x, "b c (h s1) (w s2) -> b c s1 s2", "mean", s1=s, s2=s))
        if s == 1:  # one phase: (B, C, 1, 1) broadcasts over the map as it is
            return weights
        return repeat(weights, "b c s1 s2 -> b c (h s1) (w s2)", h=x.shape[-2] // s, w=x.shape[-1] // s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        content, gate = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        gated = content * gate  # SimpleGate
        return self.project_out(gated * self.channel_weights(gated))


class FastSimplifiedChannelAttention(SimplifiedChannelAttention):
    """SCA whose 1x1 convs are :class:`PointwiseConv2d`, the rest as the reference computes it."""

    pointwise = PointwiseConv2d


@register_block("sca", kernels=KERNELS)
def _sca(spec: BlockSpec) -> nn.Module:
    # spec.dilation is the phase stride in the literal form and 1 on phase sub-images.
    block = spec.pick(SimplifiedChannelAttention, FastSimplifiedChannelAttention)
    return block(spec.dim, phase_stride=spec.dilation)
