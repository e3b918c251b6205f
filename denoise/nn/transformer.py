"""A pre-norm residual block built from a list of named sub-blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from denoise.nn.fast_layers import FastLayerNorm2d
from denoise.nn.norm import LayerNorm2d
from denoise.nn.registry import BlockSpec, build_block

TBSN_BLOCKS = ("gcsa", "ffn", "mwsa", "ffn")


class TransformerBlock(nn.Module):
    """``x += layer(LN(x))`` for each named layer; TBSN's is G-CSA, FFN, M-WSA, FFN.

    The residual stream runs in the precision of the block's parameters, never narrower: under
    bf16 autocast each layer's bf16 output is added to a float32 sum, so rounding does not build
    up over the blocks (the paper TBSN's SIDD blocks in bf16: 0.94 -> 0.40 levels RMS from the
    float32 output on the worst block, docs/performance.md). In float32, float64 or bf16 weights
    without autocast the stream is already in that precision and nothing changes.
    """

    def __init__(self, spec: BlockSpec, blocks: Sequence[str] = TBSN_BLOCKS):
        super().__init__()
        norm = spec.pick(LayerNorm2d, FastLayerNorm2d)
        self.norms = nn.ModuleList(norm(spec.dim, bias=spec.norm_bias) for _ in blocks)
        self.layers = nn.ModuleList(build_block(name, spec) for name in blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.norms[0].weight.dtype)
        for norm, layer in zip(self.norms, self.layers):
            x = x + layer(norm(x))
        return x


def transformer_stage(spec: BlockSpec, depth: int, blocks: Sequence[str] = TBSN_BLOCKS) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(spec, blocks) for _ in range(depth)))
