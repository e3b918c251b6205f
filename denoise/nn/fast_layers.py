"""Faster kernels for two layers every block uses, with the parameters of the plain layers.

On CPU, oneDNN runs a 1x1 convolution on an NCHW map several times slower than the same product
written as a matrix multiplication, and ``x.var(dim=1)`` over the channels of an NCHW map is a
slow strided reduction. Measured on a 2-core Xeon, (4, 96, 128, 128) input, forward: 1x1 conv
96 -> 96 35 ms vs 7.5 ms as a matmul; the channel variance of LayerNorm2d 44 ms vs 9 ms in two
passes. :func:`use_fast_layers` swaps these layers in place for subclasses that compute the same
function faster; parameter names, shapes and state dicts do not change, so checkpoints move
freely between the reference layers and these. The phase-split networks use them; the literal
forms keep the reference layers, as the official code runs them.
"""

from __future__ import annotations

import torch
from torch import nn

from denoise.nn.norm import LayerNorm2d


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride 1, ungrouped ``nn.Conv2d`` computed as ``weight @ x`` over the channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
