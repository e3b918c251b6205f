"""nn.Module building blocks, one concept per file."""

from denoise.nn.channel_attention import ChannelAttention
from denoise.nn.feed_forward import DilatedFeedForward
from denoise.nn.masked_conv import CentreMaskedConv2d
from denoise.nn.norm import LayerNorm2d
from denoise.nn.registry import BLOCKS, BlockSpec, build_block, register_block
from denoise.nn.transformer import TransformerBlock, transformer_stage
from denoise.nn.window_attention import MaskedWindowAttention

__all__ = [
    "BLOCKS",
    "BlockSpec",
    "CentreMaskedConv2d",
    "ChannelAttention",
    "DilatedFeedForward",
    "LayerNorm2d",
    "MaskedWindowAttention",
    "TransformerBlock",
    "build_block",
    "register_block",
    "transformer_stage",
]
