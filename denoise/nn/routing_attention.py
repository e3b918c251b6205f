"""BiFormer's bi-level routing attention (BRA) with its local positional term (LEPE).

1. Cut the map into ``regions x regions`` equal regions (padding bottom/right to a multiple).
2. Coarse level: mean-pool q and k over each region; the region-to-region affinity picks, for
   every query region, the ``topk`` regions most worth attending to.
3. Fine level: gather the keys/values of those regions and run dense token attention from each
   query region to its ``topk * region_size`` gathered tokens.
4. Add LEPE, a depthwise conv on v, so nearby pixels are always seen whatever the routing says.

The routing is a discrete choice: no gradient flows through the chosen indices, so a gradient
blind-spot test cannot see a leak there. Inside a phase-split body every region, every pooled
mean and every gathered token belongs to one phase sub-image, so the block is exactly blind;
the perturbation test (change x(p), watch output p) checks the routing too. There is no literal
form: at full resolution the pooled means would mix phases.

Padding: positions added to reach a multiple of ``regions`` are excluded from the region means
and masked out of the token attention, so the output on the real pixels does not depend on
how much padding was needed.

:class:`FastBiLevelRoutingAttention` (the ``fast`` kernels) computes the same numbers with its
1x1 convs as :class:`denoise.nn.fast_layers.PointwiseConv2d`.
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.rules import checked, integer, odd_integer


class BiLevelRoutingAttention(nn.Module):
    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    @checked("BiLevelRoutingAttention: ")
    def __init__(
        self, dim: int, heads: int = 2,
        regions: Annotated[int, integer(1)] = 8, topk: Annotated[int, integer(1)] = 4,
        lepe_kernel: Annotated[int, odd_integer(1)] = 5, bias: bool = False,
    ):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"BiLevelRoutingAttention: dim {dim} is not divisible by heads {heads}")
        self.heads, self.regions, self.topk = heads, regions, topk
        self.qkv = self.pointwise(dim, dim * 3, 1, bias=bias)
        self.lepe = nn.Conv2d(dim, dim, lepe_kernel, padding=lepe_kernel // 2, groups=dim, bias=bias)
        self.project_out = self.pointwise(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = self.regions
        pad_h, pad_w = (-h) % n, (-w) % n
        q, k, v = self.qkv(x).chunk(3, dim=1)
        lepe = self.lepe(v)
        inside = x.new_ones(1, 1, h, w, dtype=torch.bool)
        if pad_h or pad_w:
            q, k, v = (F.pad(t, (0, pad_w, 0, pad_h)) for t in (q, k, v))
            inside = F.pad(inside, (0, pad_w, 0, pad_h), value=False)
        size_h, size_w = (h + pad_h) // n, (w + pad_w) // n
        to_regions = "b c (ny sy) (nx sx) -> b (ny nx) (sy sx) c"
        q, k, v = (rearrange(t, to_regions, ny=n, nx=n) for t in (q, k, v))
        inside = rearrange(inside, to_regions, ny=n, nx=n)[0, :, :, 0]  # (regions, tokens)

        # Coarse level. Padded tokens are zeros, so a sum over all tokens divided by the number
        # of real ones is the mean over real pixels; a region of padding only is never routed to
        # unless topk exceeds the number of real regions (then it is masked below anyway).
        count = inside.sum(dim=1).to(q.dtype)  # (regions,)
        q_region = q.sum(dim=2) / count.clamp(min=1)[:, None]
        k_region = k.sum(dim=2) / count.clamp(min=1)[:, None]
        affinity = q_region @ k_region.transpose(-2, -1)  # (b, regions, regions)
        affinity = affinity.masked_fill(count == 0, float("-inf"))
        routes = affinity.topk(min(self.topk, n * n), dim=-1).indices  # (b, regions, topk)

        # Fine level: gather the routed regions' tokens for every query region.
        # Regions go into the batch axis: SDPA's fused CPU kernel takes 4-d inputs only (3x faster).
        batch = torch.arange(b, device=x.device)[:, None, None]
        k_routed, v_routed = (
            rearrange(t[batch, routes], "b r t s (m d) -> (b r) m (t s) d", m=self.heads) for t in (k, v)
        )
        # Without padding every gathered token is real: no mask, which keeps the fused kernel.
        key_inside = rearrange(inside[routes], "b r t s -> (b r) 1 1 (t s)") if pad_h or pad_w else None
        q = rearrange(q, "b r s (m d) -> (b r) m s d", m=self.heads)
        out = F.scaled_dot_product_attention(q, k_routed, v_routed, attn_mask=key_inside)
        out = rearrange(
            out, "(b ny nx) m (sy sx) d -> b (m d) (ny sy) (nx sx)", ny=n, nx=n, sy=size_h, sx=size_w
        )
        return self.project_out(out[..., :h, :w] + lepe)


class FastBiLevelRoutingAttention(BiLevelRoutingAttention):
    """BRA whose 1x1 convs are :class:`PointwiseConv2d`, the routing as the reference computes it."""

    pointwise = PointwiseConv2d
