"""HCANet: hybrid convolution and attention network for hyperspectral denoising (Hu et al., 2024).

A Restormer-style 3-level U-Net whose transformer blocks are ``x += CAFM(LN(x)); x += MSFN(LN(x))``
(``denoise.nn.conv_attention_fusion``, ``denoise.nn.multiscale_feed_forward``): dim 48, blocks
[2, 3, 3] on levels 1, 2 and latent, decoders mirroring the encoders, one refinement block, 31
bands in and out, a 3x3 conv in and out and a global residual. Restormer's sampling: 3x3 conv
C -> C/2 then pixel-unshuffle down, 3x3 conv C -> 2C then pixel-shuffle up; level 2's skip is
concatenated and reduced by a 1x1 conv, level 1's is concatenated and kept (2*dim channels).

Two networks share the U-Net (``HCANetBody``, on the frame of ``denoise.nets.unet_frame``):

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
from dataclasses import dataclass
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nets.base import Network, full_precision
from denoise.nets.blind_spot import OneBranchBlindSpotNet
from denoise.nets.unet_frame import PER_LEVEL, WIDTH, UNetFrame, heads_per_level
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.nn.kernels import pick, resolve_kernels
from denoise.nn.registry import BlockSpec
from denoise.nn.transformer import transformer_stage
from denoise.rules import check_fields, integer, list_of, positive_number, problems, raise_problems

HCANET_BLOCKS = ("cafm", "msfn")
PHASE_STRIDE = 2  # a 3x3 masked conv, as TBSN; reflect padding is blind-safe only for stride 2


@dataclass
class HCANetOptions:
    """The U-Net's settings, shared by both networks; the defaults are the paper's.

    Each field carries its rule (:mod:`denoise.rules`), read by the config check before any work
    and checked again when the options are built. ``kernels`` (``denoise.nn.kernels``): ``fast``
    (the default of both networks) or ``reference``.
    """

    dim: Annotated[int, WIDTH] = 48
    num_blocks: Annotated[Sequence[int], PER_LEVEL] = (2, 3, 3)
    num_refinement_blocks: Annotated[int, integer(0)] = 1
    heads: Annotated[Sequence[int], PER_LEVEL] = (1, 2, 4)
    ffn_expansion: Annotated[float, positive_number()] = 2.66
    dilations: Annotated[Sequence[int], list_of(integer(1), non_empty=True)] = (1, 2, 3)
    kernels: str = "fast"  # checked as it is resolved

    def __post_init__(self):
        check_fields(self, "HCANet: ")
        # CAFM's channel attention splits each level's channels into its heads.
        raise_problems(problems({"heads": heads_per_level(self.dim)}, vars(self), "HCANet: "))
        self.num_blocks, self.heads, self.dilations = tuple(self.num_blocks), tuple(self.heads), tuple(self.dilations)
        self.kernels = resolve_kernels(self.kernels, "phase", "HCANet")


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


class HCANetBody(UNetFrame):
    """The 3-level U-Net of CAFM/MSFN blocks: dim -> 2*dim channels, sides multiples of 4."""

    size_multiple = 4

    def __init__(self, options: HCANetOptions):
        def stage(level: int, channels: int, depth: int) -> nn.Sequential:
            spec = BlockSpec(
                dim=channels, channel_heads=options.heads[level], ffn_expansion=options.ffn_expansion,
                dilations=options.dilations, norm_bias=True, kernels=options.kernels,
            )
            return transformer_stage(spec, depth, HCANET_BLOCKS)

        super().__init__(
            options.dim, options.num_blocks, options.num_refinement_blocks, stage, Downsample, Upsample,
            pointwise=pick(options.kernels, nn.Conv2d, PointwiseConv2d),
        )


class HCANet(Network):
    """Non-blind HCANet, (B, in_channels, H, W) -> (B, in_channels, H, W) for any H, W (padded inside).

    ``options``: the fields of :class:`HCANetOptions`.
    """

    def __init__(self, in_channels: int = 31, **options: Annotated[Any, HCANetOptions]):
        settings = HCANetOptions(**options)
        super().__init__(in_channels, HCANetBody.size_multiple)
        self.embed = nn.Conv2d(in_channels, settings.dim, 3, padding=1, bias=False)
        self.body = HCANetBody(settings)
        self.output = nn.Conv2d(self.body.out_channels, in_channels, 3, padding=1, bias=False)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return full_precision(self.output, self.body(self.embed(x))) + x  # the global residual


class BlindSpotHCANet(OneBranchBlindSpotNet):
    """HCANet's U-Net as a blind-spot network, (B, in_channels, H, W) -> (B, in_channels, H, W), any H, W.

    ``options``: the fields of :class:`HCANetOptions`.
    """

    def __init__(self, in_channels: int = 3, **options: Annotated[Any, HCANetOptions]):
        settings = HCANetOptions(**options)
        body = HCANetBody(settings)
        super().__init__(in_channels, PHASE_STRIDE * HCANetBody.size_multiple, settings.dim, body, "phase",
                         settings.kernels, PHASE_STRIDE)
