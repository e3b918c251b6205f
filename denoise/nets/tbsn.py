"""TBSN: Transformer-based blind-spot network (Li, Zhang, Zuo, AAAI 2025).

A 3-level U-Net of transformer blocks (G-CSA, FFN, M-WSA, FFN) behind a centre-masked 3x3
conv. Default is the phase-split form: the U-Net runs on the 4 parity sub-images with plain
convs and 4x4/6x6 windows. ``form="literal"`` is the paper's full-resolution network (dilated
convs, 8x8/12x12 masked windows, parity-preserving patch-unshuffle); both share parameters.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nets.blind_spot import BlindSpotBranch, check_form
from denoise.nn.registry import BlockSpec
from denoise.nn.transformer import TBSN_LAYOUT, transformer_stage
from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.ops.phase import phase_pixel_shuffle, phase_pixel_unshuffle

PHASE_STRIDE = 2


class Downsample(nn.Module):
    """1x1 conv C -> C/2, then a pixel-unshuffle within each phase: (C/2, H) -> (2C, H/2)."""

    def __init__(self, dim: int, form: str):
        super().__init__()
        self.form = form
        self.reduce = nn.Conv2d(dim, dim // 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        if self.form == "literal":
            return phase_pixel_unshuffle(x, 2, PHASE_STRIDE)
        return F.pixel_unshuffle(x, 2)


class Upsample(nn.Module):
    """1x1 conv C -> 2C, then the inverse shuffle within each phase: (2C, H) -> (C/2, 2H)."""

    def __init__(self, dim: int, form: str):
        super().__init__()
        self.form = form
        self.expand = nn.Conv2d(dim, dim * 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.expand(x)
        if self.form == "literal":
            return phase_pixel_shuffle(x, 2, PHASE_STRIDE)
        return F.pixel_shuffle(x, 2)


class TBSNBody(nn.Module):
    """The U-Net between the masked conv and the 1x1 head; maps dim -> 2*dim channels."""

    def __init__(
        self,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 4, 4),
        num_refinement_blocks: int = 4,
        channel_heads: Sequence[int] = (1, 2, 4),
        window_heads: Sequence[int] = (2, 2, 3),
        head_dim: int = 16,
        window: int = 8,
        overlap: float = 0.5,
        ffn_expansion: float = 1.0,
        block_layout: Sequence[str] = TBSN_LAYOUT,
        form: str = "phase",
        gcsa_mode: str = "phase",
    ):
        super().__init__()

        def spec(level: int, channels: int) -> BlockSpec:
            return BlockSpec(
                dim=channels, form=form, phase_stride=PHASE_STRIDE, channel_heads=channel_heads[level],
                window_heads=window_heads[level], head_dim=head_dim, window=window, overlap=overlap,
                ffn_expansion=ffn_expansion, gram=gcsa_mode,
            )

        layout = tuple(block_layout)
        self.encoder1 = transformer_stage(spec(0, dim), num_blocks[0], layout)
        self.down1 = Downsample(dim, form)
        self.encoder2 = transformer_stage(spec(1, dim * 2), num_blocks[1], layout)
        self.down2 = Downsample(dim * 2, form)
        self.latent = transformer_stage(spec(2, dim * 4), num_blocks[2], layout)
        self.up2 = Upsample(dim * 4, form)
        self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
        self.decoder2 = transformer_stage(spec(1, dim * 2), num_blocks[1], layout)
        self.up1 = Upsample(dim * 2, form)
        # Level 1 keeps the concatenated 2*dim channels, with level 1's head counts.
        self.decoder1 = transformer_stage(spec(0, dim * 2), num_blocks[0], layout)
        self.refinement = transformer_stage(spec(0, dim * 2), num_refinement_blocks, layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.down1(enc1))
        latent = self.latent(self.down2(enc2))
        dec2 = self.decoder2(self.reduce2(torch.cat([self.up2(latent), enc2], dim=1)))
        dec1 = self.decoder1(torch.cat([self.up1(dec2), enc1], dim=1))
        return self.refinement(dec1)


class TBSN(nn.Module):
    """Blind-spot network (B, in_ch, H, W) -> (B, in_ch, H, W); any H, W (padded inside).

    Defaults are the paper configuration (12,746,780 parameters). ``gcsa_mode="global"`` is the
    official code's Gram over all pixels, which leaks slightly; keep "phase" unless loading
    official weights.
    """

    def __init__(
        self,
        in_ch: int = 3,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 4, 4),
        num_refinement_blocks: int = 4,
        channel_heads: Sequence[int] = (1, 2, 4),
        window_heads: Sequence[int] = (2, 2, 3),
        head_dim: int = 16,
        window: int = 8,
        overlap: float = 0.5,
        ffn_expansion: float = 1.0,
        block_layout: Sequence[str] = TBSN_LAYOUT,
        form: str = "phase",
        gcsa_mode: str = "phase",
    ):
        super().__init__()
        self.in_ch, self.form = in_ch, check_form(form)
        # Two 2x down-samplings of the phase sub-images, then whole windows at the lowest level.
        self.size_multiple = PHASE_STRIDE * 4 * (window // PHASE_STRIDE)
        body = TBSNBody(
            dim, num_blocks, num_refinement_blocks, channel_heads, window_heads, head_dim, window,
            overlap, ffn_expansion, block_layout, form, gcsa_mode,
        )
        self.branch = BlindSpotBranch(in_ch, dim, body, PHASE_STRIDE, form)
        self.head = nn.Conv2d(dim * 2, in_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(f"TBSN: expected {self.in_ch} input channels (in_ch), got {x.shape[1]}")
        h, w = x.shape[-2:]
        # Reflect padding copies pixels onto positions of their own parity, which the masked
        # conv never reads for the same phase: the padded network stays exactly blind.
        x = pad_to_multiple(x, self.size_multiple, mode="reflect")
        return crop_to(self.head(self.branch(x)), h, w)
