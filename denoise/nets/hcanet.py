"""HCANet: hybrid convolution and attention network for hyperspectral denoising (Hu et al., 2024).

A Restormer-style 3-level U-Net whose transformer blocks are ``x += CAFM(LN(x)); x += MSFN(LN(x))``
(``denoise.nn.conv_attention_fusion``, ``denoise.nn.multiscale_feed_forward``): dim 48, blocks
[2, 3, 3] on levels 1, 2 and latent, decoders mirroring the encoders, one refinement block, 31
bands in and out, a 3x3 conv in and out and a global residual. Restormer's sampling: 3x3 conv
C -> C/2 then pixel-unshuffle down, 3x3 conv C -> 2C then pixel-shuffle up; level 2's skip is
concatenated and reduced by a 1x1 conv, level 1's is concatenated and kept (2*dim channels).

Two networks share the U-Net (``HCANetBody``):

- ``HCANet``: the supervised, non-blind network of the paper (a student or baseline; its config
  lives in ``configs/model/student/``).
- ``BlindSpotHCANet``: the same body inside the blind-spot construction (masked conv, phase
  split, body, phase merge, 1x1 head). No global residual there: it would hand x(p) to output p.

Parameter count: the paper's network is about 4.6M. The official code runs 2D maps through
``Conv3d`` layers on a depth-1 axis, so its 3x3x3 depthwise kernels hold 27 taps of which only the
9 of the middle slice ever touch data. This 2D network has exactly the live taps and so fewer
parameters with identical function (see ``docs/blocks.md`` for the measured numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nets.blind_spot import BlindSpotBranch
from denoise.nn.fast_layers import use_fast_layers
from denoise.nn.registry import BlockSpec
from denoise.nn.transformer import transformer_stage
from denoise.ops.padding import crop_to, pad_to_multiple

HCANET_LAYOUT = ("cafm", "msfn")
PHASE_STRIDE = 2  # a 3x3 masked conv, as TBSN; reflect padding is blind-safe only for stride 2


class Downsample(nn.Module):
    """Restormer's: 3x3 conv C -> C/2, then pixel-unshuffle: (C, H) -> (2C, H/2)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(self.conv(x), 2)


class Upsample(nn.Module):
    """Restormer's: 3x3 conv C -> 2C, then pixel-shuffle: (C, H) -> (C/2, 2H)."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


class HCANetBody(nn.Module):
    """The 3-level U-Net of CAFM/MSFN blocks: dim -> 2*dim channels, sides multiples of 4."""

    size_multiple = 4

    def __init__(
        self,
        dim: int = 48,
        num_blocks: Sequence[int] = (2, 3, 3),
        num_refinement_blocks: int = 1,
        heads: Sequence[int] = (1, 2, 4),
        ffn_expansion: float = 2.66,
        dilations: Sequence[int] = (1, 2, 3),
    ):
        super().__init__()

        def stage(level: int, channels: int, depth: int) -> nn.Sequential:
            spec = BlockSpec(
                dim=channels, channel_heads=heads[level], ffn_expansion=ffn_expansion,
                dilations=tuple(dilations), norm_bias=True,
            )
            return transformer_stage(spec, depth, HCANET_LAYOUT)

        self.out_channels = dim * 2
        self.encoder1 = stage(0, dim, num_blocks[0])
        self.down1 = Downsample(dim)
        self.encoder2 = stage(1, dim * 2, num_blocks[1])
        self.down2 = Downsample(dim * 2)
        self.latent = stage(2, dim * 4, num_blocks[2])
        self.up2 = Upsample(dim * 4)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder2 = stage(1, dim * 2, num_blocks[1])
        self.up1 = Upsample(dim * 2)
        self.decoder1 = stage(0, dim * 2, num_blocks[0])
        self.refinement = stage(0, dim * 2, num_refinement_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.down1(enc1))
        latent = self.latent(self.down2(enc2))
        dec2 = self.decoder2(self.reduce2(torch.cat([self.up2(latent), enc2], dim=1)))
        dec1 = self.decoder1(torch.cat([self.up1(dec2), enc1], dim=1))
        return self.refinement(dec1)


class HCANet(nn.Module):
    """Non-blind HCANet, (B, in_ch, H, W) -> (B, in_ch, H, W) for any H, W (padded inside)."""

    def __init__(
        self,
        in_ch: int = 31,
        dim: int = 48,
        num_blocks: Sequence[int] = (2, 3, 3),
        num_refinement_blocks: int = 1,
        heads: Sequence[int] = (1, 2, 4),
        ffn_expansion: float = 2.66,
        dilations: Sequence[int] = (1, 2, 3),
    ):
        super().__init__()
        self.in_ch = in_ch
        self.embed = nn.Conv2d(in_ch, dim, 3, padding=1, bias=False)
        self.body = HCANetBody(dim, num_blocks, num_refinement_blocks, heads, ffn_expansion, dilations)
        self.output = nn.Conv2d(self.body.out_channels, in_ch, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(f"HCANet: expected {self.in_ch} input channels (in_ch), got {x.shape[1]}")
        h, w = x.shape[-2:]
        padded = pad_to_multiple(x, HCANetBody.size_multiple, mode="reflect")
        residual = self.output(self.body(self.embed(padded)))
        return crop_to(residual, h, w) + x


class BlindSpotHCANet(nn.Module):
    """HCANet's U-Net as a blind-spot network, (B, in_ch, H, W) -> (B, in_ch, H, W), any H, W."""

    def __init__(
        self,
        in_ch: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (2, 3, 3),
        num_refinement_blocks: int = 1,
        heads: Sequence[int] = (1, 2, 4),
        ffn_expansion: float = 2.66,
        dilations: Sequence[int] = (1, 2, 3),
    ):
        super().__init__()
        self.in_ch = in_ch
        self.size_multiple = PHASE_STRIDE * HCANetBody.size_multiple
        body = HCANetBody(dim, num_blocks, num_refinement_blocks, heads, ffn_expansion, dilations)
        self.branch = BlindSpotBranch(in_ch, dim, body, PHASE_STRIDE, form="phase")
        self.head = nn.Conv2d(body.out_channels, in_ch, 1, bias=False)
        use_fast_layers(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(
                f"BlindSpotHCANet: expected {self.in_ch} input channels (in_ch), got {x.shape[1]}"
            )
        h, w = x.shape[-2:]
        # Reflection keeps every copied pixel on its own phase (see TBSN): still exactly blind.
        x = pad_to_multiple(x, self.size_multiple, mode="reflect")
        return crop_to(self.head(self.branch(x)), h, w)
