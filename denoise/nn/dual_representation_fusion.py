"""SFFNet's multiscale dual-representation alignment filter (MDAF): fuses two maps into one.

Where two representations of the same image meet (a U-Net's up-sampled decoder features and
its encoder skip, two branches of a network), MDAF lets each one steer the other:

1. LayerNorm each input.
2. Multi-scale strip depthwise convs: horizontal 1x7, 1x11, 1x21 and vertical 7x1, 11x1, 21x1,
   summed, then a 1x1 conv. Strips see long rows and columns cheaply, which is what the
   row/column attention below compares.
3. Row-wise cross attention: every row of x1's features is a query token (its feature vector is
   the whole row, all channels of a head), the rows of x2's features are keys and values, so an
   H x H map per head decides which rows of x2 each row of x1 takes. Column-wise cross attention
   does the same with columns, queries from x2 and keys/values from x1. Tokens are L2-normalised
   and the logits scaled by a learnable temperature per head, as in Restormer's MDTA.
4. Output = 1x1 projection of each attention result + x1 + x2 (the raw inputs, so a freshly
   initialised MDAF starts close to a sum and never blocks either input).

Blind-spot use: rows, columns and strips all stay inside the map given; inside a phase-split
body that is one phase sub-image and the fusion is exactly blind. There is no literal form.

:class:`FastDualRepresentationFusion` (the ``fast`` kernels) computes the same numbers with its
norms and 1x1 convs as their fast twins (:mod:`denoise.nn.fast_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.fast_layers import FastLayerNorm2d, PointwiseConv2d, layout_like
from denoise.nn.norm import LayerNorm2d
from denoise.rules import checked, list_of, odd_integer


class StripConvs(nn.Module):
    """Sum of depthwise 1xk and kx1 convs for every k, then a 1x1 conv.

    Convolution is linear, so the sum of the horizontal strips is one 1 x max(k) depthwise conv
    whose kernel is the sum of the centred, zero-padded kernels (likewise vertically): two convs
    run instead of six, with the paper's separate kernels kept as the parameters. ``pointwise``
    is the class of the 1x1 conv.
    """

    def __init__(self, dim: int, kernels: Sequence[int], pointwise: type[nn.Conv2d] = nn.Conv2d):
        super().__init__()
        self.horizontal = nn.ModuleList(nn.Conv2d(dim, dim, (1, k), groups=dim) for k in kernels)
        self.vertical = nn.ModuleList(nn.Conv2d(dim, dim, (k, 1), groups=dim) for k in kernels)
        self.longest = max(kernels)
        self.project = pointwise(dim, dim, 1)

    def _summed_kernel(self, convs: nn.ModuleList) -> tuple[torch.Tensor, torch.Tensor]:
        weight = 0
        for conv in convs:
            margin = (self.longest - max(conv.kernel_size)) // 2
            pad = (margin, margin, 0, 0) if conv.kernel_size[0] == 1 else (0, 0, margin, margin)
            weight = weight + F.pad(conv.weight, pad)
        return weight, sum(conv.bias for conv in convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.longest // 2
        rows = F.conv2d(x, *self._summed_kernel(self.horizontal), padding=(0, half), groups=x.shape[1])
        columns = F.conv2d(x, *self._summed_kernel(self.vertical), padding=(half, 0), groups=x.shape[1])
        return self.project(rows + columns)


class DualRepresentationFusion(nn.Module):
    """MDAF: ``forward(x1, x2)`` with two (B, dim, H, W) maps -> one (B, dim, H, W) map."""

    # The classes of the norms and 1x1 convs; the fast kernels use their fast twins.
    norm, pointwise = LayerNorm2d, nn.Conv2d

    @checked("DualRepresentationFusion: ")
    def __init__(
        self, dim: int, heads: int = 1,
        strip_kernels: Annotated[Sequence[int], list_of(odd_integer(1), non_empty=True)] = (7, 11, 21),
    ):
        super().__init__()
        if dim % heads:
            raise ConfigError(f"DualRepresentationFusion: dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = self.norm(dim, bias=True), self.norm(dim, bias=True)
        self.strips1 = StripConvs(dim, strip_kernels, self.pointwise)
        self.strips2 = StripConvs(dim, strip_kernels, self.pointwise)
        self.row_temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.column_temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.project_rows = self.pointwise(dim, dim, 1)
        self.project_columns = self.pointwise(dim, dim, 1)

    @staticmethod
    def _cross_attention(
        queries: torch.Tensor, keys: torch.Tensor, temperature: torch.Tensor, heads: int, axis: str
    ) -> torch.Tensor:
        """Tokens are rows (``axis="rows"``) or columns of the maps; values are the keys' map."""
        h, w = queries.shape[-2:]
        if axis == "rows":
            to_tokens, from_tokens = "b (m c) h w -> b m h (w c)", "b m h (w c) -> b (m c) h w"
        else:
            to_tokens, from_tokens = "b (m c) h w -> b m w (h c)", "b m w (h c) -> b (m c) h w"
        q = rearrange(queries, to_tokens, m=heads)
        v = rearrange(keys, to_tokens, m=heads)
        attn = (F.normalize(q, dim=-1) @ F.normalize(v, dim=-1).transpose(-2, -1)) * temperature
        return rearrange(attn.softmax(dim=-1) @ v, from_tokens, m=heads, h=h, w=w)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        if x1.shape != x2.shape:
            raise ValueError(
                f"DualRepresentationFusion: inputs differ in shape: {tuple(x1.shape)} vs {tuple(x2.shape)}"
            )
        # Rows and columns become tokens by reshapes of NCHW maps: a channels-last input would be
        # copied by each of them, so the fusion runs on NCHW and hands back the caller's layout.
        return layout_like(self.fuse(x1.contiguous(), x2.contiguous()), x1)

    def fuse(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        f1 = self.strips1(self.norm1(x1))
        f2 = self.strips2(self.norm2(x2))
        rows = self._cross_attention(f1, f2, self.row_temperature, self.heads, "rows")
        columns = self._cross_attention(f2, f1, self.column_temperature, self.heads, "columns")
        return self.project_rows(rows) + self.project_columns(columns) + x1 + x2


class FastDualRepresentationFusion(DualRepresentationFusion):
    """MDAF whose norms and 1x1 convs are their fast twins, the rest as the reference computes it."""

    norm, pointwise = FastLayerNorm2d, PointwiseConv2d
