"""Restormer's three-level U-Net, the frame of the TBSN and HCANet bodies.

::

    encoder1 ─────────────────────────────────────────────────── fuse1 ─ decoder1 ─ refinement
       └ down1 ─ encoder2 ──────────── fuse2 [─ reduce2] ─ decoder2 ─ up1 ┘
                    └ down2 ─ latent ─ up2 ┘

Level 1 runs at ``dim`` channels, level 2 at 2*dim and the latent level at 4*dim; each
down-sampler halves the sides and doubles the channels, each up-sampler the reverse. A network
gives the frame its stages of blocks and its samplers, which are what differ between TBSN
(1x1 convs, shuffles within each phase) and HCANet (3x3 convs, plain shuffles), and one of two
skip joins: concatenation (level 2's reduced back to 2*dim by a 1x1 conv, level 1's kept at
2*dim), or a fusion module that returns one map of the skip's width.

The rules of the settings every network on this frame has (``dim``, one value per level) are
here, so that TBSN's and HCANet's option fields write the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from denoise.rules import Rule, even_integer, integer, list_of

LEVELS = ("level 1", "level 2", "latent")
# A down-sampler halves the channels and then shuffles 2x2 pixels into them: only an even width doubles.
WIDTH = even_integer(2)
PER_LEVEL = list_of(integer(1), length=len(LEVELS))

# stage(level, channels, depth): ``depth`` blocks of ``level`` (0, 1, 2) at ``channels`` wide.
Stage = Callable[[int, int, int], nn.Module]
# sampler(channels) and fuse(level, channels): modules for a map of ``channels`` channels.
Sampler = Callable[[int], nn.Module]
Fuse = Callable[[int, int], nn.Module]


def level_channels(dim: int) -> tuple[int, ...]:
    """The channels of each level: dim, 2*dim, 4*dim (level 1's decoder may run at 2*dim, which
    whatever divides dim divides too)."""
    return tuple(dim * 2**level for level in range(len(LEVELS)))


def heads_per_level(dim: int) -> Rule:
    """Heads split a level's channels evenly: each level's count must divide its channels."""
    channels = level_channels(dim)
    return Rule(
        f"one head count per level ({', '.join(LEVELS)}), each dividing its channels {list(channels)}",
        lambda heads: all(width % count == 0 for width, count in zip(channels, heads)),
    )


class ConcatSkip(nn.Module):
    """The plain U-Net skip: the up-sampled map and the encoder's, stacked along channels."""

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([up, skip], dim=1)


class UNetFrame(nn.Module):
    """The U-Net on a (B, dim, H, W) map -> (B, ``out_channels``, H, W); H, W multiples of 4.

    ``out_channels`` is 2*dim with concatenated skips and dim with ``fuse``. ``pointwise`` is
    the class of the 1x1 conv that reduces level 2's concatenation. :class:`ConcatSkip` has no
    parameters and adds no state-dict keys, so both joins keep the parameter names of the paper
    networks.
    """

    def __init__(
        self,
        dim: int,
        depths: Sequence[int],
        refinement_depth: int,
        stage: Stage,
        down: Sampler,
        up: Sampler,
        pointwise: type[nn.Conv2d] = nn.Conv2d,
        fuse: Fuse | None = None,
    ):
        super().__init__()
        self.encoder1 = stage(0, dim, depths[0])
        self.down1 = down(dim)
        self.encoder2 = stage(1, dim * 2, depths[1])
        self.down2 = down(dim * 2)
        self.latent = stage(2, dim * 4, depths[2])
        self.up2 = up(dim * 4)
        self.concatenates = fuse is None
        if self.concatenates:
            self.fuse2, self.fuse1 = ConcatSkip(), ConcatSkip()
            self.reduce2 = pointwise(dim * 4, dim * 2, 1, bias=False)
            self.out_channels = dim * 2  # level 1 keeps the concatenation, with level 1's heads
        else:
            self.fuse2, self.fuse1 = fuse(1, dim * 2), fuse(0, dim)
            self.out_channels = dim
        self.decoder2 = stage(1, dim * 2, depths[1])
        self.up1 = up(dim * 2)
        self.decoder1 = stage(0, self.out_channels, depths[0])
        self.refinement = stage(0, self.out_channels, refinement_depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        enc1 = self.encoder1(x)
        enc2 = self.encoder2(self.down1(enc1))
        latent = self.latent(self.down2(enc2))
        dec2 = self.decoder2(self.join2(self.up2(latent), enc2))
        dec1 = self.decoder1(self.fuse1(self.up1(dec2), enc1))
        return self.refinement(dec1)

    def join2(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Level 2's skip: the fusion, or the concatenation reduced back to 2*dim channels."""
        joined = self.fuse2(up, skip)
        return self.reduce2(joined) if self.concatenates else joined
