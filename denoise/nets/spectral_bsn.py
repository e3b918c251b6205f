"""A blind-spot network for hyperspectral cubes that also reads the other bands of the centre pixel.

A spatial blind spot hides the whole spectrum of pixel p. With noise that is independent from
band to band, though, the other bands of p are the best evidence there is for band b of p:
neighbouring bands of a real cube are strongly correlated, and their noise says nothing about
the noise of band b. This network keeps the blind spot exact for every (pixel, band) pair:

    spatial = any pixel-blind network (TBSN, DBSN, ...)          # reads no band of p
    for each band group g (the bands b with b mod K == g):
        out[g] = spatial[g] + head_g(spatial, x(p) with the bands of g zeroed)
        head_g(...) = linear_g(x(p) without g) + mlp_g(spatial, x(p) without g)

The heads are 1x1 convolutions, so output band b at p reads x(q) only at other pixels q (through
the spatial network) and x(p, b') only for bands b' outside b's group: never x(p, b).
Interleaving the groups gives each band its two neighbours (b - 1, b + 1) as evidence. Noise that
is correlated across bands at one pixel (one sensor element, all bands) breaks the premise; noise
correlated along a column within a band (stripes) breaks the spatial blind spot instead.

The linear part of each head has a closed-form start (:meth:`SpectralBlindSpotNet.start_from_data`):
least squares of the group's noisy bands on the other groups' noisy bands of the same pixels, on
the first training batch. Because the target's noise is independent of the inputs, the fit on
noisy data estimates the predictor of the clean band (the Noise2Self argument), so training begins
at a spectral denoiser (on Jasper Ridge at sigma 30, one batch of 8 crops: 19.1 -> about 30 dB)
instead of at noise, and spends its steps on what the spatial network adds.
"""

from __future__ import annotations

from typing import Annotated

import torch
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nets.base import Network
from denoise.rules import checked, integer


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
        self.linear = nn.Conv2d(bands, len(group), 1)
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
        visible = noisy * self.visible
        return self.linear(visible) + self.mlp(torch.cat([spatial, visible], dim=1))

    @torch.no_grad()
    def fit_linear(self, noisy: torch.Tensor, target: torch.Tensor) -> None:
        """Set the linear part to the least-squares predictor of ``target`` (B, group, H, W) from
        the visible bands of ``noisy`` (B, bands, H, W), with a bias. Solved in float64, also
        inside a bf16 training step."""
        shown = self.visible.flatten().nonzero().flatten()
        inputs = rearrange(noisy[:, shown], "b c h w -> (b h w) c").double()
        inputs = torch.cat([inputs, torch.ones_like(inputs[:, :1])], dim=1)
        outputs = rearrange(target, "b c h w -> (b h w) c").double()
        with torch.autocast(inputs.device.type, enabled=False):
            gram = inputs.T @ inputs
            # A faint ridge keeps the solve defined where bands are nearly collinear (clean,
            # smooth spectra) or constant; it is far below the noise's share of the diagonal.
            gram += 1e-6 * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
            solution = torch.linalg.solve(gram, inputs.T @ outputs)
        weight = torch.zeros_like(self.linear.weight[:, :, 0, 0], dtype=solution.dtype)
        weight[:, shown] = solution[:-1].T
        self.linear.weight.copy_(weight[:, :, None, None])
        self.linear.bias.copy_(solution[-1])


class SpectralBlindSpotNet(Network):
    """(B, bands, H, W) -> (B, bands, H, W); output (p, b) is blind to input (p, b) only.

    ``spatial``: a pixel-blind network over the same bands (already built, e.g. by Hydra from a
    nested config). ``groups``: K, how many interleaved band groups share a head; band b is
    predicted without the noisy bands of its group at p, so larger K shows each band more of its
    own spectrum (K = 2: every other band) at the cost of K heads. ``hidden``: the heads' width.
    ``linear_start``: fit the heads' linear parts in closed form on the first training batch.
    """

    blindness = "pixel_band"

    # The hyperspectral network is the model's own network (its other messages name model.net too).
    @checked("model.net.")
    def __init__(
        self,
        in_channels: int,
        spatial: Network,
        groups: Annotated[int, integer(2)] = 2,
        hidden: Annotated[int, integer(1)] = 128,
        linear_start: bool = True,
    ):
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
        if linear_start and type(spatial).output_layer is Network.output_layer:
            raise ConfigError(
                f"model.net.linear_start=true: {type(spatial).__name__} names no output layer to start from zero; "
                "expected TBSN, DBSN, BlindSpotHCANet or linear_start=false"
            )
        self.spatial = spatial
        self.linear_start = bool(linear_start)
        self.heads = nn.ModuleList(LeaveGroupOutHead(in_channels, hidden, g) for g in band_groups(in_channels, groups))
        order = torch.cat([head.group for head in self.heads])
        self.register_buffer("band_order", torch.argsort(order), persistent=False)

    @torch.no_grad()
    def start_from_data(self, noisy: torch.Tensor) -> bool:
        """Start as the linear spectral predictor alone: each head's linear part fitted to its noisy
        bands, and the last layers of the paths that are still untrained (the spatial network, the
        heads' MLPs, whose outputs at initialisation are noise of about the signal's size) set to
        zero. Those layers learn from the first step (their gradients do not vanish at zero), and
        the spatial network keeps learning its own estimate of each band, as without the start."""
        if not self.linear_start:
            return False
        output = self.spatial.output_layer()
        output.weight.zero_()
        if output.bias is not None:
            output.bias.zero_()
        for head in self.heads:
            head.mlp[-1].weight.zero_()
            head.mlp[-1].bias.zero_()
            head.fit_linear(noisy, noisy[:, head.group])
        return True

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        spatial = self.spatial(x)
        corrections = torch.cat([head(spatial, x) for head in self.heads], dim=1)
        return spatial + corrections[:, self.band_order]
