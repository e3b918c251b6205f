"""HCANet's convolution and attention fusion module (CAFM).

Two branches share one q/k/v projection (1x1 conv then 3x3 depthwise conv) and are summed:

- global branch: channel self-attention exactly as Restormer's MDTA (per head, q and k
  L2-normalised over space, a C/heads x C/heads Gram matrix scaled by a learnable temperature,
  softmax, applied to v, 1x1 projection): long-range, cross-channel (spectral) correlation.
- local branch: the 3 * heads q/k/v feature groups are mixed by a fully connected layer into 9
  maps per channel of a group (one per tap of a 3x3 window), which a grouped 3x3 conv turns
  back into ``dim`` channels. It is a convolution whose inputs are the attention features
  themselves (the ACmix idea HCANet builds on), so it costs little beyond the shared projection.

The Gram matrix sums over every pixel of the map it is given: inside a phase-split body that
is one phase sub-image and the block is exactly blind; at full resolution it is not, so the
registry offers no literal form.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from denoise.nn.channel_attention import ChannelAttention

TAPS = 9  # a 3x3 window


class ConvAttentionFusion(ChannelAttention):
    """MDTA (inherited: ``qkv``, ``qkv_dwconv``, ``temperature``, ``project_out``) + a local conv branch."""

    def __init__(self, dim: int, heads: int = 1, bias: bool = False):
        super().__init__(dim, heads, phase_stride=1, form="phase", bias=bias)
        group_dim = dim // heads
        self.group_mix = nn.Linear(3 * heads, TAPS)
        self.local_conv = nn.Conv2d(group_dim * TAPS, dim, 3, padding=1, groups=group_dim)

    def local_branch(self, qkv: torch.Tensor) -> torch.Tensor:
        groups = rearrange(qkv, "b (t c) h w -> b t c h w", t=3 * self.heads)
        # The mixing weights are shared by every channel c of a group, so it is one small matmul
        # over t whose output already has the (c, tap) channel order the grouped conv wants.
        taps = torch.einsum("btchw,nt->bcnhw", groups, self.group_mix.weight)
        taps = taps + self.group_mix.bias[:, None, None]
        return self.local_conv(rearrange(taps, "b c n h w -> b (c n) h w"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv_dwconv(self.qkv(x))
        return self.attend(qkv) + self.local_branch(qkv)
