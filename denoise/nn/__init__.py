"""nn.Module building blocks, one concept per file."""

from denoise.nn.channel_attention import ChannelAttention, FastChannelAttention
from denoise.nn.conv_attention_fusion import ConvAttentionFusion
from denoise.nn.dilated_attention import FastMultiScaleDilatedAttention, MultiScaleDilatedAttention
from denoise.nn.dual_representation_fusion import DualRepresentationFusion, FastDualRepresentationFusion
from denoise.nn.fast_layers import FastLayerNorm2d, PointwiseConv2d
from denoise.nn.feed_forward import DilatedFeedForward, FastGatedDconvFeedForward, GatedDconvFeedForward
from denoise.nn.kernels import KERNELS
from denoise.nn.masked_conv import CentreMaskedConv2d
from denoise.nn.multiscale_feed_forward import FastMultiScaleFeedForward, MultiScaleFeedForward
from denoise.nn.norm import LayerNorm2d
from denoise.nn.registry import BLOCK_FORMS, BLOCK_KERNELS, BLOCKS, BlockSpec, build_block, register_block
from denoise.nn.routing_attention import BiLevelRoutingAttention, FastBiLevelRoutingAttention
from denoise.nn.simplified_channel_attention import FastSimplifiedChannelAttention, SimplifiedChannelAttention
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
    "FastBiLevelRoutingAttention",
    "FastChannelAttention",
    "FastDualRepresentationFusion",
    "FastGatedDconvFeedForward",
    "FastLayerNorm2d",
    "FastMaskedWindowAttention",
    "FastMultiScaleDilatedAttention",
    "FastMultiScaleFeedForward",
    "FastSimplifiedChannelAttention",
    "GatedDconvFeedForward",
    "LayerNorm2d",
    "MaskedWindowAttention",
    "MultiScaleDilatedAttention",
    "MultiScaleFeedForward",
    "PointwiseConv2d",
    "SimplifiedChannelAttention",
    "TransformerBlock",
    "build_block",
    "register_block",
    "transformer_stage",
]
