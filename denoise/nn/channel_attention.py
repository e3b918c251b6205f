"""Channel self-attention: Restormer's MDTA and TBSN's grouped, blind form (G-CSA).

q, k, v come from a 1x1 conv and a 3x3 depthwise conv; per head, q and k are L2-normalised
over space and their C/heads x C/heads Gram matrix, scaled by a learnable temperature, weights
the channels of v. The Gram matrix sums over pixels, so *which* pixels it sums over decides
whether the block is blind:

- ``gram="phase"`` (default, exact): one Gram per parity phase of each image.
- ``gram="global"``: one Gram over all pixels of the image, as the official TBSN code. It leaks
  a little of x(p) into output p; kept for loading official checkpoints.

``form="phase"``: the input is a phase-split batch (each entry one phase, ``phases`` entries per
image). ``form="literal"``: the input is the full-resolution map and the depthwise conv is
dilated by the phase stride.

:class:`ChannelAttention` computes it as the paper writes it; :class:`FastChannelAttention`
(the ``fast`` kernels) computes the same numbers in fewer passes over memory and keeps a
channels-last input channels-last all the way through: there oneDNN's depthwise conv is about
three times faster (docs/performance.md).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.autograd import RowGram
from denoise.nn.fast_layers import PointwiseConv2d, layout_like
from denoise.nn.forms import check_form
from denoise.rules import checked, one_of

GRAM_MODES = ("phase", "global")

# For each (form, gram) pair: the map's pattern, the groups and the pixels of one group. A group
# is the set of pixels one Gram matrix sums over.
_GROUPINGS = {
    ("phase", "phase"): ("b (m c) h w", "b", "(h w)"),
    ("phase", "global"): ("(b p) (m c) h w", "b", "(p h w)"),
    ("literal", "global"): ("b (m c) h w", "b", "(h w)"),
    ("literal", "phase"): ("b (m c) (h s1) (w s2)", "(b s1 s2)", "(h w)"),
}


class ChannelAttention(nn.Module):
    """MDTA (``phase_stride=1``) or G-CSA (``phase_stride=s``, ``gram`` per phase or global)."""

    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    @checked("ChannelAttention: ")
    def __init__(
        self,
        dim: int,
        heads: int = 1,
        phase_stride: int = 2,
        form: str = "phase",
        gram: Annotated[str, one_of(*GRAM_MODES)] = "phase",
        bias: bool = False,
    ):
        super().__init__()
        check_form(form, "ChannelAttention")
        if dim % heads:
            raise ConfigError(f"ChannelAttention: heads={heads} must divide dim={dim}")
        self.heads, self.stride, self.form, self.gram = heads, phase_stride, form, gram
        dilation = phase_stride if form == "literal" else 1
        self.qkv = self.pointwise(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, 3, padding=dilation, dilation=dilation, groups=dim * 3, bias=bias
        )
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.project_out = self.pointwise(dim, dim, 1, bias=bias)

    def grouping(self, height: int, width: int) -> tuple[str, str, str, dict[str, int]]:
        """The map's einops pattern, its groups, the pixels of a group, and the axis sizes."""
        # MDTA (stride 1): one Gram over each batch entry, whatever the form.
        form_and_gram = ("phase", "phase") if self.stride == 1 else (self.form, self.gram)
        pattern, groups, pixels = _GROUPINGS[form_and_gram]
        axes = {"m": self.heads, "h": height, "w": width}
        if "p" in pixels:
            axes["p"] = self.stride**2
        if "s1" in groups:
            axes.update(s1=self.stride, s2=self.stride, h=height // self.stride, w=width // self.stride)
        return pattern, groups, pixels, axes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(self.qkv_dwconv(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """The attention proper on the projected (B, 3C, H, W) q/k/v; HCANet's CAFM reuses it."""
        pattern, groups, pixels, axes = self.grouping(*qkv.shape[-2:])
        to_groups = f"{pattern} -> {groups} m c {pixels}"
        q, k, v = (rearrange(t, to_groups, **axes) for t in qkv.chunk(3, dim=1))
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attention = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        out = rearrange(attention @ v, f"{groups} m c {pixels} -> {pattern}", **axes)
        return self.project_out(out)


class FastChannelAttention(ChannelAttention):
    """:class:`ChannelAttention` in fewer passes over memory, in the input's layout.

    The cosines come from the Gram matrix of the raw q and k divided by the outer product of
    their norms (no normalised copies of the maps), and the 1x1 projection is folded into the
    attention, so the map is mixed once (:meth:`mix_and_project`).
    """

    pointwise = PointwiseConv2d

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        pattern, groups, pixels, axes = self.grouping(*qkv.shape[-2:])
        q, k, v = qkv.chunk(3, dim=1)
        q, k = (rearrange(t, f"{pattern} -> {groups} m c {pixels}", **axes) for t in (q, k))
        attention = self.cosine_similarity(q, k).mul(self.temperature).softmax(dim=-1)
        return layout_like(self.mix_and_project(attention, v), qkv)

    @staticmethod
    def cosine_similarity(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(..., c, n) x (..., c, n) -> (..., c, c): cosines between the rows of q and of k.

        The same numbers as normalising q and k first (norms clamped at the same 1e-12), without
        two normalised copies of the maps and their costly backward.
        """
        # sqrt of a plain sum of squares: on a channels-last map the pixels are strided, where
        # ``norm`` is a slow reduction.
        q_norm = q.square().sum(dim=-1).sqrt().clamp_min(1e-12)
        k_norm = k.square().sum(dim=-1).sqrt().clamp_min(1e-12)
        channels_innermost = q.stride(-2) == 1  # views of a channels-last map
        gram = RowGram.apply(q, k) if channels_innermost else q @ k.transpose(-2, -1)
        return gram / (q_norm[..., :, None] * k_norm[..., None, :])

    def mix_and_project(self, attention: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``project_out(attention @ v)`` as one product: P (A v) = (P A) v, per group.

        The 1x1 projection P is folded into the (block-diagonal over heads) C x C attention of
        each group, and the map is mixed once, pixels as rows: on a channels-last map those rows
        are v's own memory and the result is written channels-last, with no copy of v and one
        pass over the map instead of two. ``attention``: (groups, heads, c, c); ``v``: (B, C, H, W).
        Returns the projected map stored channels-last.
        """
        pattern, groups, pixels, axes = self.grouping(*v.shape[-2:])
        channels = pattern.replace("(m c)", "C")  # v's channels as one axis: pixels become rows
        projection = rearrange(self.project_out.weight, "o (m c) 1 1 -> o m c", m=self.heads)
        mixing = rearrange(torch.einsum("omk,gmkc->gomc", projection, attention), "g o m c -> g (m c) o")
        sizes = {axis: size for axis, size in axes.items() if axis != "m"}
        out = torch.bmm(rearrange(v, f"{channels} -> {groups} {pixels} C", **sizes), mixing)
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        channels_last_map = channels.replace("C ", "") + " C"
        return rearrange(out, f"{groups} {pixels} C -> {channels_last_map}", **sizes).permute(0, 3, 1, 2)
