"""A blind-spot network for hyperspectral cubes that also reads the other bands of the centre pixel.

A spatial blind spot hides the whole spectrum of pixel p. With noise that is independent from
band to band, though, the other bands of p are the best evidence there is for band b of p:
neighbouring bands of a real cube are strongly correlated, and their noise says nothing about
the noise of band b. This network keeps the blind spot exact for every (pixel, band) pair:

    spatial = any pixel-blind network (TBSN, DBSN, ...)          # reads no band of p
    for each band group g (the bands b with b mod K == g):
        out[g] = spatial[g] + head_g(spatial, x(p) with the bands of g zeroed)

The heads are 1x1 convolutions, so output band b at p reads x(q) only at other pixels q (through
the spatial network) and x(p, b') only for bands b' outside b's group: never x(p, b).
Interleaving the groups gives each band its two neighbours (b - 1, b + 1) as evidence. Noise that
is correlated across bands at one pixel (one sensor element, all bands) breaks the premise; noise
correlated along a column within a band (stripes) breaks the spatial blind spot instead.
"""

from __future__ import annotations

import torch
from torch import nn

from denoise.errors import ConfigError
from denoise.nets.base import Network


def band_groups(bands: int, groups: int) -> list[torch.Tensor]:
    """The band indices of each group: band b belongs to group b mod ``groups``."""
    return [torch.arange(g, bands, groups) for g in range(groups)]


class LeaveGroupOutHead(nn.Module):
    """Predicts the bands of one group at each pixel from the spatial estimate of every band and
    the noisy bands of the other groups at that pixel (1x1 layers only)."""

    def __init__(self, bands: int, hidden: int, group: torch.Tensor):
        super().__init__()
        visible = torch.ones(1, bands, 1, 1)
        visible[:, group] = 0
        self.register_buffer("visible", visible, persistent=False)
        self.register_buffer("group", group.clone(), persistent=False)
        self.mlp = nn.Sequential(
            nn.Conv2d(2 * bands, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, len(group), 1),
        )

    def forward(self, spatial: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
        # The mask is applied to the input, not folded into weights: the stored weights stay
        # ordinary parameters, and the group's own samples of p never enter.
        return self.mlp(torch.cat([spatial, noisy * self.visible], dim=1))


class SpectralBlindSpotNet(Network):
    """(B, bands, H, W) -> (B, bands, H, W); output (p, b) is blind to input (p, b) only.

    ``spatial``: a pixel-blind network over the same bands (already built, e.g. by Hydra from a
    nested config). ``groups``: K, how many interleaved band groups share a head; band b is
    predicted without the noisy bands of its group at p, so larger K shows each band more of its
    own spectrum (K = 2: every other band) at the cost of K heads. ``hidden``: the heads' width.
    """

    blindness = "pixel_band"

    def __init__(self, in_channels: int, spatial: Network, groups: int = 2, hidden: int = 128):
        super().__init__(in_channels)
        if spatial.blindness != "pixel":
            raise ConfigError(
                f"model.net.spatial: {type(spatial).__name__} is not a pixel-blind network; expected TBSN, DBSN, ..."
            )
        if spatial.in_channels != in_channels:
            raise ConfigError(
                f"model.net.spatial.in_channels={spatial.in_channels} differs from model.net.in_channels={in_channels}"
            )
        if not 2 <= groups <= in_channels:
            raise ConfigError(f"model.net.groups={groups}: expected an integer from 2 to in_channels ({in_channels})")
        self.spatial = spatial
        self.heads = nn.ModuleList(LeaveGroupOutHead(in_channels, hidden, g) for g in band_groups(in_channels, groups))
        order = torch.cat([head.group for head in self.heads])
        self.register_buffer("band_order", torch.argsort(order), persistent=False)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(x)
        corrections = torch.cat([head(spatial, x) for head in self.heads], dim=1)
        return spatial + corrections[:, self.band_order]
