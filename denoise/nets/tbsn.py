"""TBSN: Transformer-based blind-spot network (Li, Zhang, Zuo, AAAI 2025).

A 3-level U-Net of transformer blocks (G-CSA, FFN, M-WSA, FFN) behind a centre-masked 3x3
conv. Default is the phase-split form: the U-Net runs on the 4 parity sub-images with plain
convs and 4x4/6x6 windows. ``form="literal"`` is the paper's full-resolution network (dilated
convs, 8x8/12x12 masked windows, parity-preserving patch-unshuffle). Independently of the form,
``kernels`` picks the layers that compute it (``denoise.nn.kernels``): ``reference``, as the
paper writes them, or ``fast``, their faster twins on channels-last maps; ``auto``, the default,
is fast for the phase form and reference for the literal form. Every choice shares parameters
and computes the same function.

Beyond the paper, the body is a frame for any registered block (``denoise.nn.registry``):
``block_layout`` names the sub-blocks of every transformer block, for all levels at once or per
level; ``block_options`` sets the remaining ``BlockSpec`` fields (routing regions, dilation
rates, ...); ``skip_fusion="mdaf"`` fuses the U-Net skips with SFFNet's MDAF instead of concat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import torch
from torch import nn

from denoise.nets.base import Network
from denoise.nets.blind_spot import BlindSpotBranch
from denoise.nets.unet_frame import UNetFrame
from denoise.nn.dual_representation_fusion import DualRepresentationFusion, FastDualRepresentationFusion
from denoise.nn.fast_layers import PointwiseConv2d, channels_last
from denoise.nn.forms import check_form
from denoise.nn.kernels import pick, resolve_kernels
from denoise.nn.registry import BlockSpec
from denoise.nn.transformer import TBSN_BLOCKS, transformer_stage
from denoise.ops.phase import phase_pixel_shuffle, phase_pixel_unshuffle

PHASE_STRIDE = 2
SKIP_FUSIONS = ("concat", "mdaf")
LEVELS = ("level 1", "level 2", "latent")
# BlockSpec fields set by TBSN's own options; block_options may set any other field.
_SPEC_ARGUMENTS = {
    "dim", "form", "phase_stride", "channel_heads", "window_heads", "head_dim", "window", "overlap",
    "ffn_expansion", "gram", "kernels",
}


def blocks_per_level(block_layout: Sequence[str] | Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """One list of block names for all levels (``[gcsa, ffn]``) or one per level (``[[...], [...], [...]]``).

    Returns the block names of level 1 (encoder1, decoder1, refinement), level 2 (encoder2,
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
    levels = tuple(tuple(level) for level in items)
    for name, blocks in zip(LEVELS, levels):
        if not blocks or not all(isinstance(block, str) for block in blocks):
            raise ValueError(f"block_layout for {name} must be a non-empty list of block names, got {blocks!r}")
    return levels


def spec_options(block_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validated extra ``BlockSpec`` fields; lists (from YAML) become tuples."""
    options = dict(block_options or {})
    allowed = {f.name for f in fields(BlockSpec)} - _SPEC_ARGUMENTS
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(
            f"block_options: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)} "
            f"(the others are TBSN options of their own)"
        )
    return {
        key: tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for key, value in options.items()
    }


@dataclass
class TBSNOptions:
    """Everything about TBSN but its channel count; the defaults are the paper's configuration.

    ``block_layout`` names the sub-blocks of every transformer block, for all levels at once or
    per level (kept as one tuple per level); ``block_options`` sets the remaining ``BlockSpec``
    fields (routing regions, dilation rates, ...); ``skip_fusion="mdaf"`` fuses the U-Net skips
    with SFFNet's MDAF instead of concatenating them. ``gcsa_mode="global"`` is the official
    code's Gram over all pixels, which leaks slightly; keep "phase" unless loading official weights.
    ``kernels``: reference | fast | auto (fast for the phase form, reference for the literal
    form); it is resolved here, so ``options.kernels`` is one of the two.
    """

    dim: int = 48
    num_blocks: Sequence[int] = (4, 4, 4)
    num_refinement_blocks: int = 4
    channel_heads: Sequence[int] = (1, 2, 4)
    window_heads: Sequence[int] = (2, 2, 3)
    head_dim: int = 16
    window: int = 8
    overlap: float = 0.5
    ffn_expansion: float = 1.0
    block_layout: Sequence[str] | Sequence[Sequence[str]] = TBSN_BLOCKS
    form: str = "phase"
    kernels: str = "auto"
    gcsa_mode: str = "phase"
    skip_fusion: str = "concat"
    block_options: Mapping[str, Any] | None = None

    def __post_init__(self):
        check_form(self.form, "TBSN")
        self.kernels = resolve_kernels(self.kernels, self.form, "TBSN")
        if self.skip_fusion not in SKIP_FUSIONS:
            raise ValueError(f"skip_fusion must be one of {SKIP_FUSIONS}, got {self.skip_fusion!r}")
        if self.skip_fusion == "mdaf" and self.form == "literal":
            raise ValueError(
                "skip_fusion='mdaf' has no literal (full-resolution) form: MDAF's strips and row/column "
                "attention are exactly blind only inside the phase-split body; use form='phase'"
            )
        self.num_blocks, self.channel_heads = tuple(self.num_blocks), tuple(self.channel_heads)
        self.window_heads = tuple(self.window_heads)
        self.block_layout = blocks_per_level(self.block_layout)
        self.block_options = spec_options(self.block_options)

    def spec(self, level: int, channels: int) -> BlockSpec:
        """The ``BlockSpec`` of the transformer blocks of ``level`` (0, 1, 2) at ``channels`` wide."""
        return BlockSpec(
            dim=channels, form=self.form, phase_stride=PHASE_STRIDE, channel_heads=self.channel_heads[level],
            window_heads=self.window_heads[level], head_dim=self.head_dim, window=self.window,
            overlap=self.overlap, ffn_expansion=self.ffn_expansion, gram=self.gcsa_mode, kernels=self.kernels,
            **self.block_options,
        )

    @property
    def size_multiple(self) -> int:
        """Two 2x down-samplings of the phase sub-images, then whole windows at the lowest level
        (only M-WSA needs whole windows; the other blocks take any size)."""
        uses_windows = any("mwsa" in blocks for blocks in self.block_layout)
        return PHASE_STRIDE * 4 * (self.window // PHASE_STRIDE if uses_windows else 1)


class Downsample(nn.Module):
    """1x1 conv C -> C/2, then a pixel-unshuffle within each phase: (C/2, H) -> (2C, H/2).

    ``phase_stride``: 1 on phase sub-images (a plain pixel-unshuffle), the phase stride at full
    resolution (literal form).
    """

    pointwise = nn.Conv2d  # the class of the 1x1 conv; the fast kernels use its fast twin

    def __init__(self, dim: int, phase_stride: int):
        super().__init__()
        self.phase_stride = phase_stride
        self.reduce = self.pointwise(dim, dim // 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return phase_pixel_unshuffle(self.reduce(x), 2, self.phase_stride)


class Upsample(nn.Module):
    """1x1 conv C -> 2C, then the inverse shuffle within each phase: (2C, H) -> (C/2, 2H)."""

    pointwise = nn.Conv2d

    def __init__(self, dim: int, phase_stride: int):
        super().__init__()
        self.phase_stride = phase_stride
        self.expand = self.pointwise(dim, dim * 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return phase_pixel_shuffle(self.expand(x), 2, self.phase_stride)


class FastDownsample(Downsample):
    """:class:`Downsample` handing back a channels-last map (the shuffle's output is NCHW)."""

    pointwise = PointwiseConv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(super().forward(x))


class FastUpsample(Upsample):
    """:class:`Upsample` handing back a channels-last map (the shuffle's output is NCHW)."""

    pointwise = PointwiseConv2d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(super().forward(x))


class TBSNBody(UNetFrame):
    """The U-Net between the masked conv and the 1x1 head; maps dim -> ``out_channels``.

    ``out_channels`` is 2*dim with concat skips (level 1 keeps the concatenation) and dim with
    MDAF skips (the fusion returns one map of the skip's width).
    """

    def __init__(self, options: TBSNOptions):
        stride = PHASE_STRIDE if options.form == "literal" else 1
        fusion = pick(options.kernels, DualRepresentationFusion, FastDualRepresentationFusion)

        def stage(level: int, channels: int, depth: int) -> nn.Sequential:
            return transformer_stage(options.spec(level, channels), depth, options.block_layout[level])

        def fuse(level: int, channels: int) -> nn.Module:
            return fusion(channels, options.channel_heads[level])

        super().__init__(
            options.dim, options.num_blocks, options.num_refinement_blocks, stage,
            down=partial(pick(options.kernels, Downsample, FastDownsample), phase_stride=stride),
            up=partial(pick(options.kernels, Upsample, FastUpsample), phase_stride=stride),
            pointwise=pick(options.kernels, nn.Conv2d, PointwiseConv2d),
            fuse=fuse if options.skip_fusion == "mdaf" else None,
        )
        # Batch entries whose outputs depend on each other: the s*s phases of an image when
        # G-CSA's Gram spans them (phase form, gcsa_mode=global); otherwise each entry alone.
        spans_phases = options.form == "phase" and options.gcsa_mode == "global"
        self.independent_entries = PHASE_STRIDE**2 if spans_phases else 1


class FastTBSNBody(TBSNBody):
    """:class:`TBSNBody` on channels-last maps, where oneDNN's convolutions are fastest.

    CPU inference runs the U-Net on the fewest batch entries that are independent of each
    other: one phase sub-image (or image, literal form), or the s*s phases of one image when
    G-CSA's Gram spans them. Small working sets stay in cache (measured in docs/performance.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, unet = channels_last(x), super().forward
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return channels_last(unet(x))
        return torch.cat([unet(entries) for entries in x.split(self.independent_entries)])


class TBSN(Network):
    """Blind-spot network (B, in_channels, H, W) -> (B, in_channels, H, W); any H, W (padded inside).

    ``options`` are the fields of :class:`TBSNOptions` (a config's flat keys); the defaults are the
    paper configuration (12,746,780 parameters). Blocks without a literal form refuse
    ``form="literal"`` by name.
    """

    blindness = "pixel"

    def __init__(self, in_channels: int = 3, **options: Any):
        settings = TBSNOptions(**options)
        super().__init__(in_channels, settings.size_multiple)
        self.options, self.form = settings, settings.form
        body = pick(settings.kernels, TBSNBody, FastTBSNBody)(settings)
        self.branch = BlindSpotBranch(in_channels, settings.dim, body, PHASE_STRIDE, self.form)
        pointwise = pick(settings.kernels, nn.Conv2d, PointwiseConv2d)
        self.head = pointwise(body.out_channels, in_channels, 1, bias=False)

    def output_layer(self) -> nn.Conv2d:
        return self.head

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        # Reflect padding copies pixels onto positions of their own parity, which the masked
        # conv never reads for the same phase: the padded network stays exactly blind.
        return self.head(self.branch(x))
