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
from typing import Annotated, Any

import torch
from torch import nn

from denoise.errors import ConfigError
from denoise.nets.blind_spot import OneBranchBlindSpotNet
from denoise.nets.unet_frame import LEVELS, PER_LEVEL, WIDTH, UNetFrame, heads_per_level
from denoise.nn.channel_attention import GRAM_MODES
from denoise.nn.dual_representation_fusion import DualRepresentationFusion, FastDualRepresentationFusion
from denoise.nn.fast_layers import PointwiseConv2d, channels_last
from denoise.nn.forms import FORMS
from denoise.nn.kernels import pick, resolve_kernels
from denoise.nn.registry import BLOCKS, BlockSpec, is_block
from denoise.nn.transformer import TBSN_BLOCKS, transformer_stage
from denoise.ops.phase import phase_pixel_shuffle, phase_pixel_unshuffle
from denoise.rules import (
    Rule,
    check_fields,
    fraction,
    integer,
    list_of,
    one_of,
    optional,
    positive_number,
    problems,
    raise_problems,
)

PHASE_STRIDE = 2
SKIP_FUSIONS = ("concat", "mdaf")
# BlockSpec fields set by TBSN's own options; block_options may set any other field.
_SPEC_ARGUMENTS = {
    "dim", "form", "phase_stride", "channel_heads", "window_heads", "head_dim", "window", "overlap",
    "ffn_expansion", "gram", "kernels",
}
BLOCK_OPTIONS = tuple(sorted({f.name for f in fields(BlockSpec)} - _SPEC_ARGUMENTS))

_BLOCK_NAMES = list_of(Rule("a block name", is_block), non_empty=True)
# One list of block names for all levels ([gcsa, ffn]) or one per level ([[...], [...], [...]]). The
# message lists the blocks registered when TBSN is imported; the check reads the registry as it runs,
# so a block a researcher registers later is accepted too.
BLOCK_LAYOUT = Rule(
    f"a non-empty list of block names ({', '.join(sorted(BLOCKS))}), or {len(LEVELS)} such lists "
    f"({', '.join(LEVELS)})",
    lambda v: _BLOCK_NAMES.accepts(v) or list_of(_BLOCK_NAMES, length=len(LEVELS)).accepts(v),
)
BLOCK_SETTINGS = optional(Rule(
    f"a mapping of block settings among {', '.join(BLOCK_OPTIONS)} (the others are TBSN options of their own)",
    lambda v: isinstance(v, Mapping) and set(v) <= set(BLOCK_OPTIONS),
))


def blocks_per_level(block_layout: Sequence[str] | Sequence[Sequence[str]]) -> tuple[tuple[str, ...], ...]:
    """The block names of level 1 (encoder1, decoder1, refinement), level 2 (encoder2, decoder2)
    and the latent level, from a layout that :data:`BLOCK_LAYOUT` accepts."""
    if all(isinstance(item, str) for item in block_layout):
        return (tuple(block_layout),) * len(LEVELS)
    return tuple(tuple(level) for level in block_layout)


def spec_options(block_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The extra ``BlockSpec`` fields; lists (from YAML) become tuples."""
    return {
        key: tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value
        for key, value in (block_options or {}).items()
    }


@dataclass
class TBSNOptions:
    """Everything about TBSN but its channel count; the defaults are the paper's configuration.

    Each field carries its rule (:mod:`denoise.rules`): the config check before any work reads
    them from here, and building the options checks them again, naming TBSN.

    ``block_layout`` names the sub-blocks of every transformer block, for all levels at once or
    per level (kept as one tuple per level); ``block_options`` sets the remaining ``BlockSpec``
    fields (routing regions, dilation rates, ...); ``skip_fusion="mdaf"`` fuses the U-Net skips
    with SFFNet's MDAF instead of concatenating them. ``gcsa_mode="global"`` is the official
    code's Gram over all pixels, which leaks slightly; keep "phase" unless loading official weights.
    ``kernels``: reference | fast | auto (fast for the phase form, reference for the literal
    form); it is resolved here, so ``options.kernels`` is one of the two.
    """

    dim: Annotated[int, WIDTH] = 48
    num_blocks: Annotated[Sequence[int], PER_LEVEL] = (4, 4, 4)
    num_refinement_blocks: Annotated[int, integer(0)] = 4
    channel_heads: Annotated[Sequence[int], PER_LEVEL] = (1, 2, 4)
    window_heads: Annotated[Sequence[int], PER_LEVEL] = (2, 2, 3)
    head_dim: Annotated[int, integer(1)] = 16
    window: Annotated[int, integer(1)] = 8
    overlap: Annotated[float, fraction(high_open=True)] = 0.5
    ffn_expansion: Annotated[float, positive_number()] = 1.0
    block_layout: Annotated[Sequence[str] | Sequence[Sequence[str]], BLOCK_LAYOUT] = TBSN_BLOCKS
    form: Annotated[str, one_of(*FORMS)] = "phase"
    kernels: str = "auto"  # checked as it is resolved, "auto" included
    gcsa_mode: Annotated[str, one_of(*GRAM_MODES)] = "phase"
    skip_fusion: Annotated[str, one_of(*SKIP_FUSIONS)] = "concat"
    block_options: Annotated[Mapping[str, Any] | None, BLOCK_SETTINGS] = None

    def __post_init__(self):
        check_fields(self, "TBSN: ")
        # G-CSA (and MDAF's skips) split each level's channels into its heads.
        raise_problems(problems({"channel_heads": heads_per_level(self.dim)}, vars(self), "TBSN: "))
        self.kernels = resolve_kernels(self.kernels, self.form, "TBSN")
        if self.skip_fusion == "mdaf" and self.form == "literal":
            raise ConfigError(
                "TBSN: skip_fusion='mdaf' has no literal (full-resolution) form: MDAF's strips and row/column "
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


class TBSN(OneBranchBlindSpotNet):
    """Blind-spot network (B, in_channels, H, W) -> (B, in_channels, H, W); any H, W (padded inside).

    ``options`` are the fields of :class:`TBSNOptions` (a config's flat keys), which carry their
    rules; the defaults are the paper configuration (12,746,780 parameters). Blocks without a
    literal form refuse ``form="literal"`` by name.
    """

    def __init__(self, in_channels: int = 3, **options: Annotated[Any, TBSNOptions]):
        settings = TBSNOptions(**options)
        body = pick(settings.kernels, TBSNBody, FastTBSNBody)(settings)
        super().__init__(in_channels, settings.size_multiple, settings.dim, body, settings.form, settings.kernels,
                         PHASE_STRIDE)
        self.options, self.form = settings, settings.form
