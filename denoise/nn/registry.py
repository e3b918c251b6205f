"""Named building blocks, so a config can say ``block_layout: [gcsa, ffn, mwsa, ffn]``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from denoise.nn.channel_attention import ChannelAttention
from denoise.nn.feed_forward import DilatedFeedForward
from denoise.nn.window_attention import MaskedWindowAttention


@dataclass(frozen=True)
class BlockSpec:
    """Everything a block factory may need about where it sits in a network."""

    dim: int
    form: str = "phase"  # "phase": runs on phase sub-images; "literal": full resolution
    phase_stride: int = 2
    channel_heads: int = 1
    window_heads: int = 2
    head_dim: int = 16
    window: int = 8
    overlap: float = 0.5
    ffn_expansion: float = 1.0
    gram: str = "phase"

    @property
    def dilation(self) -> int:
        return self.phase_stride if self.form == "literal" else 1


BLOCKS: dict[str, Callable[[BlockSpec], nn.Module]] = {}


def register_block(name: str):
    def decorator(factory: Callable[[BlockSpec], nn.Module]):
        if name in BLOCKS:
            raise ValueError(f"block {name!r} is registered twice")
        BLOCKS[name] = factory
        return factory

    return decorator


def build_block(name: str, spec: BlockSpec) -> nn.Module:
    if name not in BLOCKS:
        raise KeyError(f"unknown block {name!r}; known blocks: {', '.join(sorted(BLOCKS))}")
    return BLOCKS[name](spec)


@register_block("gcsa")
def _gcsa(spec: BlockSpec) -> nn.Module:
    return ChannelAttention(spec.dim, spec.channel_heads, spec.phase_stride, spec.form, spec.gram)


@register_block("mwsa")
def _mwsa(spec: BlockSpec) -> nn.Module:
    return MaskedWindowAttention(
        spec.dim, spec.window_heads, spec.head_dim, spec.window, spec.overlap, spec.phase_stride, spec.form
    )


@register_block("ffn")
def _ffn(spec: BlockSpec) -> nn.Module:
    return DilatedFeedForward(spec.dim, spec.ffn_expansion, spec.dilation)
