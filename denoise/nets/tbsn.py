"""TBSN: Transformer-based blind-spot network (Li, Zhang, Zuo, AAAI 2025).

A 3-level U-Net of transformer blocks (G-CSA, FFN, M-WSA, FFN) behind a centre-masked 3x3
conv. Default is the phase-split form: the U-Net runs on the 4 parity sub-images with plain
convs and 4x4/6x6 windows. ``form="literal"`` is the paper's full-resolution network (dilated
convs, 8x8/12x12 masked windows, parity-preserving patch-unshuffle) built from the reference
layers; the phase form also swaps in faster kernels (``denoise.nn.fast_layers``). Both share
parameters and compute the same function.

Beyond the paper, the body is a frame for any registered block (``denoise.nn.registry``):
``block_layout`` names the sub-blocks of every transformer block, for all levels at once or per
level; ``block_options`` sets the remaining ``BlockSpec`` fields (routing regions, dilation
rates, ...); ``skip_fusion="mdaf"`` fuses the U-Net skips with SFFNet's MDAF instead of concat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nets.blind_spot import BlindSpotBranch, check_form
from denoise.nn.dual_representation_fusion import DualRepresentationFusion
from denoise.nn.fast_layers import use_fast_layers
from denoise.nn.registry import BlockSpec
from denoise.nn.transformer import TBSN_LAYOUT, transformer_stage
from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.ops.phase import phase_pixel_shuffle, phase_pixel_unshuffle

PHASE_STRIDE = 2
SKIP_FUSIONS = ("concat", "mdaf")
LEVELS = ("level 1", "level 2", "latent")
# BlockSpec fields set by TBSN's own arguments; block_options may set any other field.
_SPEC_ARGUMENTS = {
    "dim", "form", "phase_stride", "channel_heads", "window_heads", "head_dim", "window", "overlap",
    "ffn_expansion", "gram",
}


def level_layouts(block_layout: Sequence[str] | Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """One layout for all levels (``[gcsa, ffn]``) or one per level (``[[...], [...], [...]]``).

    Returns the layouts of level 1 (encoder1, decoder1, refinement), level 2 (encoder2,
    decoder2) and the latent level.
    """
    items = list(block_layout)
    if items and all(isinstance(item, str) for item in items):
        return (tuple(items),) * len(LEVELS)
    if not items or any(isinstance(item, str) for item in items) or len(items) != len(LEVELS):
        raise ValueError(
            f"block_layout must be a non-empty list of block names (all levels) or {len(LEVELS)} such lists "
            f"({', '.join(LEVELS)}); got {block_layout!r}"
        )
    layouts = tuple(tuple(level) for level in items)
    for name, layout in zip(LEVELS, layouts):
        if not layout or not all(isinstance(block, str) for block in layout):
            raise ValueError(f"block_layout for {name} must be a non-empty list of block names, got {layout!r}")
    return layouts


def spec_options(block_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated extra ``BlockSpec`` fields; lists (from YAML) become tuples."""
    options = dict(block_options or {})
    allowed = {f.name for f in fields(BlockSpec)} - _SPEC_ARGUMENTS
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"block_options: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)} "
            f"(the others are TBSN arguments of their own)"
        )
    return {
        key: tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for key, value in options.items()
    }


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
    """The U-Net between the masked conv and the 1x1 head; maps dim -> ``out_channels``.

    ``out_channels`` is 2*dim with concat skips (level 1 keeps the concatenation) and dim with
    MDAF skips (the fusion returns one map of the skip's width).
    """

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
        block_layout: Sequence[str] | Sequence[Sequence[str]] = TBSN_LAYOUT,
        form: str = "phase",
        gcsa_mode: str = "phase",
        skip_fusion: str = "concat",
        block_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        if skip_fusion not in SKIP_FUSIONS:
            raise ValueError(f"skip_fusion must be one of {SKIP_FUSIONS}, got {skip_fusion!r}")
        if skip_fusion == "mdaf" and form == "literal":
            raise ValueError(
                "skip_fusion='mdaf' has no literal (full-resolution) form: MDAF's strips and row/column "
                "attention are exactly blind only inside the phase-split body; use form='phase'"
            )
        options = spec_options(block_options)
        layouts = level_layouts(block_layout)

        def stage(level: int, channels: int, depth: int) -> nn.Sequential:
            spec = BlockSpec(
                dim=channels, form=form, phase_stride=PHASE_STRIDE, channel_heads=channel_heads[level],
                window_heads=window_heads[level], head_dim=head_dim, window=window, overlap=overlap,
                ffn_expansion=ffn_expansion, gram=gcsa_mode, **options,
            )
            return transformer_stage(spec, depth, layouts[level])

        self.skip_fusion = skip_fusion
        self.encoder1 = stage(0, dim, num_blocks[0])
        self.down1 = Downsample(dim, form)
        self.encoder2 = stage(1, dim * 2, num_blocks[1])
        self.down2 = Downsample(dim * 2, form)
        self.latent = stage(2, dim * 4, num_blocks[2])
        self.up2 = Upsample(dim * 4, form)
        if skip_fusion == "concat":
            self.reduce2 = nn.Conv2d(dim * 4, dim * 2, 1, bias=False)
            # Level 1 keeps the concatenated 2*dim channels, with level 1's head counts.
            self.out_channels = dim * 2
        else:
            self.fuse2 = DualRepresentationFusion(dim * 2, channel_heads[1])
            self.fuse1 = DualRepresentationFusion(dim, channel_heads[0])
            self.out_channels = dim
        self.decoder2 = stage(1, dim * 2, num_blocks[1])
        self.up1 = Upsample(dim * 2, form)
        self.decoder1 = stage(0, self.out_channels, num_blocks[0])
        self.refinement = stage(0, self.out_channels, num_refinement_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.down1(enc1))
        latent = self.latent(self.down2(enc2))
        if self.skip_fusion == "concat":
            dec2 = self.decoder2(self.reduce2(torch.cat([self.up2(latent), enc2], dim=1)))
            dec1 = self.decoder1(torch.cat([self.up1(dec2), enc1], dim=1))
        else:
            dec2 = self.decoder2(self.fuse2(self.up2(latent), enc2))
            dec1 = self.decoder1(self.fuse1(self.up1(dec2), enc1))
        return self.refinement(dec1)


class TBSN(nn.Module):
    """Blind-spot network (B, in_ch, H, W) -> (B, in_ch, H, W); any H, W (padded inside).

    Defaults are the paper configuration (12,746,780 parameters). ``gcsa_mode="global"`` is the
    official code's Gram over all pixels, which leaks slightly; keep "phase" unless loading
    official weights. ``block_layout``, ``skip_fusion`` and ``block_options``: see
    :class:`TBSNBody`; blocks without a literal form refuse ``form="literal"`` by name.
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
        block_layout: Sequence[str] | Sequence[Sequence[str]] = TBSN_LAYOUT,
        form: str = "phase",
        gcsa_mode: str = "phase",
        skip_fusion: str = "concat",
        block_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        self.in_ch, self.form = in_ch, check_form(form)
        # Two 2x down-samplings of the phase sub-images, then whole windows at the lowest level
        # (only M-WSA needs whole windows; the other blocks take any size).
        uses_windows = any("mwsa" in layout for layout in level_layouts(block_layout))
        self.size_multiple = PHASE_STRIDE * 4 * (window // PHASE_STRIDE if uses_windows else 1)
        body = TBSNBody(
            dim, num_blocks, num_refinement_blocks, channel_heads, window_heads, head_dim, window,
            overlap, ffn_expansion, block_layout, form, gcsa_mode, skip_fusion, block_options,
        )
        self.branch = BlindSpotBranch(in_ch, dim, body, PHASE_STRIDE, form)
        self.head = nn.Conv2d(body.out_channels, in_ch, 1, bias=False)
        if form == "phase":  # the fast form; the literal form keeps the reference layers
            use_fast_layers(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_ch:
            raise ValueError(f"TBSN: expected {self.in_ch} input channels (in_ch), got {x.shape[1]}")
        h, w = x.shape[-2:]
        # Reflect padding copies pixels onto positions of their own parity, which the masked
        # conv never reads for the same phase: the padded network stays exactly blind.
        x = pad_to_multiple(x, self.size_multiple, mode="reflect")
        return crop_to(self.head(self.branch(x)), h, w)
