"""The fast twins of the two layers every block uses, and the channels-last layout functions.

On CPU, oneDNN runs a 1x1 convolution on an NCHW map several times slower than the same product
written as a matrix multiplication, and ``x.var(dim=1)`` over the channels of an NCHW map is a
slow strided reduction (measured in docs/performance.md). :class:`PointwiseConv2d` and
:class:`FastLayerNorm2d` compute the same function as ``nn.Conv2d`` (1x1) and
:class:`LayerNorm2d` faster, each a subclass overriding ``forward``; parameter names, shapes and
state dicts do not change, so checkpoints move freely between the two kernels
(``denoise.nn.kernels``). The kernels are chosen when a module is built: a block's fast twin
(the class the builder picks for the fast kernels) builds these where the reference block builds
``nn.Conv2d`` and ``LayerNorm2d`` (its class attributes ``pointwise`` and ``norm``), a network
picks them from its ``kernels`` argument, and no layer changes its class afterwards.

Layout: on a channels-last map oneDNN's own 1x1 convolution is a plain GEMM and the fastest
kernel of all (faster than a batched matmul on NCHW, whose MKL GEMM runs at about half oneDNN's
rate on AMD CPUs), so the pointwise twin keeps the input's layout and picks the kernel for it.
:func:`channels_last` is the one place a network moves its maps to that layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from denoise.nn.autograd import BiasFreeChannelNorm, ChannelsLastBothWays
from denoise.nn.norm import LayerNorm2d


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a (B, C, H, W) map stored channels-last (and not also plain contiguous)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` stored channels-last (C innermost): a copy unless it already is.

    Its gradient is stored channels-last too. Reshapes such as ``pixel_shuffle`` and the phase
    merge hand back NCHW gradients; left so, every layer's backward downstream would mix an NCHW
    gradient with channels-last maps (an add of the two layouts costs 14x one of a single
    layout on (4, 96, 64, 64)), so a network calls this where its maps change shape.
    """
    if torch.is_grad_enabled() and x.requires_grad:
        return ChannelsLastBothWays.apply(x)
    return x.contiguous(memory_format=torch.channels_last)


def layout_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` stored channels-last when ``reference`` is, else contiguous NCHW (no copy when it
    already is): a block returns the layout it was given."""
    return channels_last(x) if is_channels_last(reference) else x.contiguous()


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride 1, ungrouped ``nn.Conv2d``: oneDNN's GEMM on a channels-last map, else
    ``weight @ x`` over the channels of the NCHW map."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The product over channels is the conv only for these; anything else would be computed wrongly.
        if (self.kernel_size, self.stride, self.padding, self.groups) != ((1, 1), (1, 1), (0, 0), 1):
            raise ValueError(
                f"PointwiseConv2d is a 1x1, stride 1, unpadded, ungrouped conv; got kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if is_channels_last(x):
            return super().forward(x)
        batch, _, height, width = x.shape
        # bmm over an expanded (stride-0) weight: one GEMM per image, no copy of the map.
        # (torch.matmul folds the batch into the rows here, which transposes the map first.)
        out = torch.bmm(self.weight.flatten(1).expand(batch, -1, -1), x.flatten(2))
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.view(batch, self.out_channels, height, width)


class FastLayerNorm2d(LayerNorm2d):
    """:class:`LayerNorm2d` with the channel variance as the mean of squared deviations.

    Two plain reductions (mean, then mean of squares of the centred map) instead of the strided
    Welford reduction of ``var``, an order of magnitude slower in either layout; centring first
    keeps the numerics of the reference (no ``E[x^2] - E[x]^2`` cancellation when features have a
    large mean). The bias-free norm of TBSN has a closed-form backward
    (:class:`denoise.nn.autograd.BiasFreeChannelNorm`, about three times faster than autograd's);
    with a bias, a channels-last map goes through ``F.layer_norm`` over its contiguous channels,
    the same function.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return BiasFreeChannelNorm.apply(x, self.weight, self.eps)
        if is_channels_last(x):
            normed = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, self.eps)
            return normed.permute(0, 3, 1, 2)
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        scale = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        return centred * scale * self.weight[:, None, None] + self.bias[:, None, None]
