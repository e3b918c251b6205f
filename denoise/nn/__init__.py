"""nn.Module building blocks, one concept per file."""

from denoise.nn.channel_attention import ChannelAttention, FastChannelAttention
from denoise.nn.conv_attention_fusion import ConvAttentionFusion
from denoise.nn.dilated_attention import MultiScaleDilatedAttention
from denoise.nn.dual_representation_fusion import DualRepresentationFusion
from denoise.nn.fast_layers import FastLayerNorm2d, PointwiseConv2d, use_fast_layers
from denoise.nn.feed_forward import DilatedFeedForward, FastGatedDconvFeedForward, GatedDconvFeedForward
from denoise.nn.kernels import KERNELS
from denoise.nn.masked_conv import CentreMaskedConv2d
from denoise.nn.multiscale_feed_forward import MultiScaleFeedForward
from denoise.nn.norm import LayerNorm2d
from denoise.nn.registry import BLOCK_FORMS, BLOCK_KERNELS, BLOCKS, BlockSpec, build_block, register_block
from denoise.nn.routing_attention import BiLevelRoutingAttention
from denoise.nn.transformer import TransformerBlock, transformer_stage
from denoise.nn.window_attention import FastMaskedWindowAttention, MaskedWindowAttention

__all__ = [
    "BLOCKS",
    "BLOCK_FORMS",
    "BLOCK_KERNELS",
    "KERNELS",
    "BiLevelRoutingAttention",
    "BlockSpec",
    "CentreMaskedConv2d",
    "ChannelAttention",
    "ConvAttentionFusion",
    "DilatedFeedForward",
    "DualRepresentationFusion",
    "FastChannelAttention",
    "FastGatedDconvFeedForward",
    "FastLayerNorm2d",
    "FastMaskedWindowAttention",
    "GatedDconvFeedForward",
    "LayerNorm2d",
    "MaskedWindowAttention",
    "MultiScaleDilatedAttention",
    "MultiScaleFeedForward",
    "PointwiseConv2d",
    "TransformerBlock",
    "build_block",
    "register_block",
    "transformer_stage",
    "use_fast_layers",
]
