"""Named building blocks, so a config can say ``block_layout: [gcsa, ffn, mwsa, ffn]``.

Every block maps (B, dim, H, W) -> (B, dim, H, W). A block is registered with the forms it
supports: ``phase`` (it runs on whatever map it is given; inside a phase-split blind-spot body
that is a phase sub-image, so any block is exactly blind there) and ``literal`` (the
full-resolution reference form, where a block must itself read only its pixel's phase). Asking
for a form a block lacks is refused with a message that names the block.

A block is registered with its kernels too (``denoise.nn.kernels``): both, when its factory builds
the class that ``spec.pick`` chooses, the reference block or its fast twin (a subclass whose 1x1
convs are ``PointwiseConv2d``, or that overrides the one method computing it); or one,
``reference``, for a block with nothing a fast kernel would change (``ffn``: two 3x3 convs),
which is built as written whatever kernels are asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from denoise.errors import ConfigError
from denoise.nn.channel_attention import ChannelAttention, FastChannelAttention
from denoise.nn.conv_attention_fusion import ConvAttentionFusion
from denoise.nn.dilated_attention import FastMultiScaleDilatedAttention, MultiScaleDilatedAttention
from denoise.nn.feed_forward import DilatedFeedForward, FastGatedDconvFeedForward, GatedDconvFeedForward
from denoise.nn.forms import FORMS
from denoise.nn.kernels import KERNELS, pick, resolve_kernels
from denoise.nn.multiscale_feed_forward import FastMultiScaleFeedForward, MultiScaleFeedForward
from denoise.nn.routing_attention import BiLevelRoutingAttention, FastBiLevelRoutingAttention
from denoise.nn.window_attention import FastMaskedWindowAttention, MaskedWindowAttention


@dataclass(frozen=True)
class BlockSpec:
    """Everything a block factory may need about where it sits in a network."""

    dim: int
    form: str = "phase"  # "phase": runs on phase sub-images; "literal": full resolution
    phase_stride: int = 2
    channel_heads: int = 1  # gcsa, mdta, cafm
    window_heads: int = 2  # mwsa
    head_dim: int = 16  # mwsa; msda and bra use dim // head_dim heads
    window: int = 8
    overlap: float = 0.5
    ffn_expansion: float = 1.0  # ffn, gdfn, msfn
    gram: str = "phase"
    dilations: tuple[int, ...] = (1, 2, 3)  # msda's head groups and msfn's branches
    regions: int = 8  # bra: the map is cut into regions x regions
    topk: int = 4  # bra: regions each query region attends to
    norm_bias: bool = False  # LayerNorm before each block: bias-free (TBSN) or with bias (HCANet)
    kernels: str = "auto"  # reference | fast | auto (fast for the phase form, reference for the literal)

    def __post_init__(self):
        resolve_kernels(self.kernels, self.form, "BlockSpec")

    @property
    def fast_kernels(self) -> bool:
        return resolve_kernels(self.kernels, self.form) == "fast"

    def pick(self, reference: type[nn.Module], fast: type[nn.Module]) -> type[nn.Module]:
        """The class of a block with both kernels that this spec asks for."""
        return pick(resolve_kernels(self.kernels, self.form), reference, fast)

    @property
    def dilation(self) -> int:
        return self.phase_stride if self.form == "literal" else 1

    @property
    def scaled_dilations(self) -> tuple[int, ...]:
        """``dilations`` in the pixels of the map the block runs on (x stride in literal form)."""
        return tuple(d * self.dilation for d in self.dilations)


BLOCKS: dict[str, Callable[[BlockSpec], nn.Module]] = {}
BLOCK_FORMS: dict[str, tuple[str, ...]] = {}
BLOCK_KERNELS: dict[str, tuple[str, ...]] = {}


def register_block(name: str, forms: tuple[str, ...] = FORMS, kernels: tuple[str, ...] = ("reference",)):
    unknown = set(forms) - set(FORMS)
    if unknown:
        raise ValueError(f"block {name!r}: unknown forms {sorted(unknown)}; known forms: {FORMS}")

    def decorator(factory: Callable[[BlockSpec], nn.Module]):
        if name in BLOCKS:
            raise ValueError(f"block {name!r} is registered twice")
        BLOCKS[name] = factory
        BLOCK_FORMS[name] = tuple(forms)
        BLOCK_KERNELS[name] = tuple(kernels)
        return factory

    return decorator


def is_block(name: Any) -> bool:
    """Whether ``name`` names a registered block (a config's ``block_layout`` entry)."""
    return isinstance(name, str) and name in BLOCKS


# Registering is the code's own doing (a ValueError above); building follows the user's config.
def build_block(name: str, spec: BlockSpec) -> nn.Module:
    if not is_block(name):
        raise ConfigError(f"unknown block {name!r}; expected one of {', '.join(sorted(BLOCKS))}")
    if spec.form not in BLOCK_FORMS[name]:
        raise ConfigError(
            f"block {name!r} has no {spec.form!r} form (it has: {', '.join(BLOCK_FORMS[name])}). "
            f"It is exactly blind only inside a phase-split body: use form='phase'."
        )
    return BLOCKS[name](spec)


def heads_of_size(spec: BlockSpec, block: str) -> int:
    """Head count for blocks whose heads split ``dim`` into ``head_dim``-sized parts."""
    if spec.dim % spec.head_dim:
        raise ConfigError(
            f"block {block!r}: dim {spec.dim} is not a multiple of head_dim {spec.head_dim}; "
            f"choose head_dim dividing every level's channels (dim, 2*dim, 4*dim)"
        )
    return spec.dim // spec.head_dim


@register_block("gcsa", kernels=KERNELS)
def _gcsa(spec: BlockSpec) -> nn.Module:
    attention = spec.pick(ChannelAttention, FastChannelAttention)
    return attention(spec.dim, spec.channel_heads, spec.phase_stride, spec.form, spec.gram)


@register_block("mdta", forms=("phase",), kernels=KERNELS)
def _mdta(spec: BlockSpec) -> nn.Module:
    # Restormer's MDTA: one Gram over the whole map it is given. On a phase sub-image that is
    # G-CSA's per-phase Gram; at full resolution it would mix phases, hence no literal form.
    attention = spec.pick(ChannelAttention, FastChannelAttention)
    return attention(spec.dim, spec.channel_heads, phase_stride=1, form="phase")


@register_block("mwsa", kernels=KERNELS)
def _mwsa(spec: BlockSpec) -> nn.Module:
    return spec.pick(MaskedWindowAttention, FastMaskedWindowAttention)(
        spec.dim, spec.window_heads, spec.head_dim, spec.window, spec.overlap, spec.phase_stride, spec.form
    )


@register_block("msda", kernels=KERNELS)
def _msda(spec: BlockSpec) -> nn.Module:
    # Neighbourhood attention reads taps at multiples of the dilation, so scaling every rate by
    # the phase stride keeps each tap on the query's phase at full resolution.
    heads, rates = heads_of_size(spec, "msda"), len(spec.dilations)
    if heads % rates:  # said in the user's terms: head_dim and dilations set the heads
        raise ConfigError(
            f"block 'msda': dim // head_dim = {spec.dim} // {spec.head_dim} = {heads} heads is not a multiple of "
            f"the number of dilation rates ({rates}); choose head_dim so that every level's channels "
            f"(dim, 2*dim, 4*dim) are multiples of head_dim * {rates}"
        )
    attention = spec.pick(MultiScaleDilatedAttention, FastMultiScaleDilatedAttention)
    return attention(spec.dim, heads, spec.scaled_dilations)


@register_block("bra", forms=("phase",), kernels=KERNELS)
def _bra(spec: BlockSpec) -> nn.Module:
    attention = spec.pick(BiLevelRoutingAttention, FastBiLevelRoutingAttention)
    return attention(spec.dim, heads_of_size(spec, "bra"), spec.regions, spec.topk)


class FastConvAttentionFusion(ConvAttentionFusion, FastChannelAttention):
    """CAFM whose global branch (inherited from channel attention) is the fast one."""


@register_block("cafm", forms=("phase",), kernels=KERNELS)
def _cafm(spec: BlockSpec) -> nn.Module:
    return spec.pick(ConvAttentionFusion, FastConvAttentionFusion)(spec.dim, spec.channel_heads)


@register_block("ffn")  # two 3x3 convs, the same in both kernels
def _ffn(spec: BlockSpec) -> nn.Module:
    return DilatedFeedForward(spec.dim, spec.ffn_expansion, spec.dilation)


@register_block("gdfn", kernels=KERNELS)
def _gdfn(spec: BlockSpec) -> nn.Module:
    feed_forward = spec.pick(GatedDconvFeedForward, FastGatedDconvFeedForward)
    return feed_forward(spec.dim, spec.ffn_expansion, spec.dilation)


@register_block("msfn", kernels=KERNELS)
def _msfn(spec: BlockSpec) -> nn.Module:
    feed_forward = spec.pick(MultiScaleFeedForward, FastMultiScaleFeedForward)
    return feed_forward(spec.dim, spec.ffn_expansion, spec.scaled_dilations)


# Blocks in files of their own register themselves (@register_block) when imported, hence last.
import denoise.nn.simplified_channel_attention  # noqa: F401
