"""DilateFormer's multi-scale dilated attention (MSDA).

A 1x1 conv gives q, k, v. Their channels (and heads) are split evenly into one group per
dilation rate; in group r every query attends to the k x k (3x3) neighbourhood around it sampled
with dilation r, so the groups see the same pixel at three scales for the cost of 3 * 9 logits
per head and pixel. The groups' outputs are concatenated and mixed by a 1x1 projection.

Neighbourhoods are gathered with ``unfold``. Taps that fall outside the map are masked out of
the softmax rather than read as zeros, so border pixels are not pulled towards 0.

Blind-spot use: every tap of a query lies at a multiple of the dilation from it. On phase
sub-images the block is blind as is; at full resolution, multiplying every rate by the phase
stride keeps all taps on the query's phase (the registry does this for the literal form).

:class:`FastMultiScaleDilatedAttention` (the ``fast`` kernels) computes the same numbers with
its 1x1 convs as :class:`denoise.nn.fast_layers.PointwiseConv2d`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.fast_layers import PointwiseConv2d
from denoise.rules import checked, integer, list_of, odd_integer


class MultiScaleDilatedAttention(nn.Module):
    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    @checked("MultiScaleDilatedAttention: ")
    def __init__(
        self,
        dim: int,
        heads: int = 3,
        dilations: Annotated[Sequence[int], list_of(integer(1), non_empty=True)] = (1, 2, 3),
        kernel_size: Annotated[int, odd_integer(1)] = 3,
        bias: bool = False,
    ):
        super().__init__()
        groups = len(dilations)
        if heads % groups or dim % heads:
            raise ConfigError(
                f"MultiScaleDilatedAttention: heads ({heads}) must be a multiple of the number of dilation "
                f"rates ({groups}) and divide dim ({dim})"
            )
        self.dilations, self.kernel_size = tuple(dilations), kernel_size
        self.group_heads = heads // groups
        self.scale = (dim // heads) ** -0.5
        self.qkv = self.pointwise(dim, dim * 3, 1, bias=bias)
        self.project_out = self.pointwise(dim, dim, 1, bias=bias)

    def _neighbourhoods(self, t: torch.Tensor, dilation: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, heads, head_dim, taps, H*W): each pixel's dilated k x k neighbours.

        This is ``unfold``'s own memory order, so no copy is made; the products below reduce
        over ``head_dim`` and ``taps`` with plain broadcasting, faster on CPU than tiny matmuls.
        """
        k = self.kernel_size
        patches = F.unfold(t, k, dilation=dilation, padding=dilation * (k // 2))
        return rearrange(patches, "b (m d n) l -> b m d n l", m=self.group_heads, n=k * k)

    def _inside(self, x: torch.Tensor, dilation: int) -> torch.Tensor:
        """(taps, H*W) bool: which neighbourhood taps fall inside the map."""
        ones = x.new_ones(1, 1, *x.shape[-2:])
        k = self.kernel_size
        return F.unfold(ones, k, dilation=dilation, padding=dilation * (k // 2))[0] > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        outputs = []  # one entry per rate, concatenated at the end (no in-place writes: autograd)
        groups = len(self.dilations)
        for q_r, k_r, v_r, dilation in zip(q.chunk(groups, 1), k.chunk(groups, 1), v.chunk(groups, 1),
                                           self.dilations):
            query = rearrange(q_r, "b (m d) h w -> b m d 1 (h w)", m=self.group_heads)
            keys, values = self._neighbourhoods(k_r, dilation), self._neighbourhoods(v_r, dilation)
            logits = (query * keys).sum(dim=2) * self.scale  # (b, m, taps, h*w)
            logits = logits.masked_fill(~self._inside(x, dilation), float("-inf"))
            out = (logits.softmax(dim=2)[:, :, None] * values).sum(dim=3)  # (b, m, d, h*w)
            outputs.append(rearrange(out, "b m d (h w) -> b (m d) h w", h=h, w=w))
        return self.project_out(torch.cat(outputs, dim=1))


class FastMultiScaleDilatedAttention(MultiScaleDilatedAttention):
    """MSDA whose 1x1 convs are :class:`PointwiseConv2d`, the attention as the reference computes it."""

    pointwise = PointwiseConv2d
