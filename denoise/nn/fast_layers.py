"""Faster kernels for two layers every block uses, with the parameters of the plain layers.

On CPU, oneDNN runs a 1x1 convolution on an NCHW map several times slower than the same product
written as a matrix multiplication, and ``x.var(dim=1)`` over the channels of an NCHW map is a
slow strided reduction. Measured on a 2-core Xeon, (4, 96, 128, 128) input, forward: 1x1 conv
96 -> 96 35 ms vs 7.5 ms as a matmul; the channel variance of LayerNorm2d 44 ms vs 9 ms in two
passes. :func:`use_fast_layers` swaps these layers in place for subclasses that compute the same
function faster; parameter names, shapes and state dicts do not change, so checkpoints move
freely between the reference layers and these. The phase-split networks use them; the literal
forms keep the reference layers, as the official code runs them.

Layout: on a channels-last map oneDNN's own 1x1 convolution is a plain GEMM and the fastest
kernel of all (2-core AMD EPYC, (4, 96, 128, 128), 96 -> 288: 27 ms channels-last vs 42 ms as a
batched matmul on NCHW, whose MKL GEMM runs at half oneDNN's rate there), so the pointwise twin
keeps the input's layout and picks the kernel for it. :func:`channels_last` is the one place a
network moves its maps to that layout.
"""

from __future__ import annotations

import torch
from torch import nn

from denoise.nn.norm import LayerNorm2d


def is_channels_last(x: torch.Tensor) -> bool:
    """True for a (B, C, H, W) map stored channels-last (and not also plain contiguous)."""
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` stored channels-last (C innermost): a copy unless it already is."""
    return x.contiguous(memory_format=torch.channels_last)


def layout_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` stored channels-last when ``reference`` is, else contiguous NCHW (no copy when it
    already is): a block returns the layout it was given."""
    return channels_last(x) if is_channels_last(reference) else x.contiguous()


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride 1, ungrouped ``nn.Conv2d``: oneDNN's GEMM on a channels-last map, else
    ``weight @ x`` over the channels of the NCHW map."""

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
    Welford reduction of ``var``; centring first keeps the numerics of the reference (no
    ``E[x^2] - E[x]^2`` cancellation when features have a large mean).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        scale = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + self.eps)
        if self.bias is None:
            return x * scale * self.weight[:, None, None]
        return centred * scale * self.weight[:, None, None] + self.bias[:, None, None]


def _is_pointwise(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


def use_fast_layers(module: nn.Module) -> nn.Module:
    """Turn every plain 1x1 conv and LayerNorm2d inside ``module`` into its fast twin, in place.

    The twins add no state, so changing the class of the existing layer keeps its parameters.
    """
    for layer in module.modules():
        if _is_pointwise(layer):
            layer.__class__ = PointwiseConv2d
        elif type(layer) is LayerNorm2d:
            layer.__class__ = FastLayerNorm2d
    return module
