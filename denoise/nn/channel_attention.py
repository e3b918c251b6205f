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
dilated by the phase stride. The phase form keeps a channels-last input channels-last all the
way through: there oneDNN's depthwise conv is about three times faster (docs/performance.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.autograd.function import once_differentiable

from denoise.nn.fast_layers import layout_like
from denoise.nn.forms import check_form

GRAM_MODES = ("phase", "global")

# (to groups, from groups) einops patterns for each (form, gram) pair. A group is the set of
# pixels one Gram matrix sums over: "n" are its pixels, "g" indexes groups.
_GROUPINGS = {
    ("phase", "phase"): ("b (m c) h w -> b m c (h w)", "b m c (h w) -> b (m c) h w"),
    ("phase", "global"): ("(b p) (m c) h w -> b m c (p h w)", "b m c (p h w) -> (b p) (m c) h w"),
    ("literal", "global"): ("b (m c) h w -> b m c (h w)", "b m c (h w) -> b (m c) h w"),
    ("literal", "phase"): (
        "b (m c) (h s1) (w s2) -> (b s1 s2) m c (h w)",
        "(b s1 s2) m c (h w) -> b (m c) (h s1) (w s2)",
    ),
}


class _RowGram(torch.autograd.Function):
    """``q @ k^T`` over the last axis, whose input gradients keep the inputs' memory order.

    On a channels-last map, q and k are (..., c, n) views with the channel axis innermost in
    memory. Autograd's matmul backward writes their gradients (..., c, n)-contiguous, the NCHW
    order, which the depthwise conv before them then runs its backward on. Here each gradient
    is the product in transposed form, written (..., n, c)-contiguous and handed back as its
    transposed view: channels-last again.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(q, k)
        return q @ k.transpose(-2, -1)

    @staticmethod
    @once_differentiable  # the saved tensors carry no graph of their own
    def backward(ctx, grad: torch.Tensor):
        q, k = ctx.saved_tensors
        grad_q = (k.transpose(-2, -1) @ grad.transpose(-2, -1)).transpose(-2, -1)
        grad_k = (q.transpose(-2, -1) @ grad).transpose(-2, -1)
        return grad_q, grad_k


class ChannelAttention(nn.Module):
    """MDTA (``phase_stride=1``) or G-CSA (``phase_stride=s``, ``gram`` per phase or global)."""

    def __init__(
        self,
        dim: int,
        heads: int = 1,
        phase_stride: int = 2,
        form: str = "phase",
        gram: str = "phase",
        bias: bool = False,
    ):
        super().__init__()
        if gram not in GRAM_MODES:
            raise ValueError(f"ChannelAttention: gram must be one of {GRAM_MODES}, got {gram!r}")
        check_form(form, "ChannelAttention")
        if dim % heads:
            raise ValueError(f"ChannelAttention: dim {dim} is not divisible by heads {heads}")
        self.heads, self.stride, self.form, self.gram = heads, phase_stride, form, gram
        dilation = phase_stride if form == "literal" else 1
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            dim * 3, dim * 3, 3, padding=dilation, dilation=dilation, groups=dim * 3, bias=bias
        )
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def cosine_similarity(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(..., c, n) x (..., c, n) -> (..., c, c): cosines between the rows of q and of k.

        The literal form normalises q and k, then takes their Gram matrix, as the paper writes
        it. The phase (fast) form divides the small Gram matrix of the raw q and k by the outer
        product of their norms instead: the same numbers (norms clamped at the same 1e-12),
        without two normalised copies of the maps and their costly backward.
        """
        if self.form == "literal":
            return F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        # sqrt of a plain sum of squares: on a channels-last map the pixels are strided, where
        # ``norm`` is a slow reduction.
        q_norm = q.square().sum(dim=-1).sqrt().clamp_min(1e-12)
        k_norm = k.square().sum(dim=-1).sqrt().clamp_min(1e-12)
        channels_innermost = q.stride(-2) == 1  # views of a channels-last map
        gram = _RowGram.apply(q, k) if channels_innermost else q @ k.transpose(-2, -1)
        return gram / (q_norm[..., :, None] * k_norm[..., None, :])

    def _grouping(self) -> tuple[str, str]:
        if self.stride == 1:  # plain MDTA: one group per batch entry
            return _GROUPINGS[("phase", "phase")]
        return _GROUPINGS[(self.form, self.gram)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attend(self.qkv_dwconv(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """The attention proper on the projected (B, 3C, H, W) q/k/v; HCANet's CAFM reuses it."""
        _, _, h, w = qkv.shape
        to_groups, from_groups = self._grouping()
        axes = {"m": self.heads}
        if to_groups.startswith("(b p)"):
            axes["p"] = self.stride**2
        if "s1" in to_groups:
            axes.update(s1=self.stride, s2=self.stride)
        q, k, v = qkv.chunk(3, dim=1)
        q, k = (rearrange(t, to_groups, **axes) for t in (q, k))
        attention = self.cosine_similarity(q, k).mul(self.temperature).softmax(dim=-1)
        if self.form == "phase":
            return layout_like(self.mix_and_project(attention, v, to_groups.startswith("(b p)")), qkv)
        sizes = {"h": h, "w": w} if "s1" not in to_groups else {"h": h // self.stride, "w": w // self.stride}
        out = rearrange(attention @ rearrange(v, to_groups, **axes), from_groups, **axes, **sizes)
        return self.project_out(out)

    def mix_and_project(self, attention: torch.Tensor, v: torch.Tensor, phases_grouped: bool) -> torch.Tensor:
        """``project_out(attention @ v)`` as one product: P (A v) = (P A) v, per group.

        The 1x1 projection P is folded into the (block-diagonal over heads) C x C attention of
        each group, and the map is mixed once, pixels as rows: on a channels-last map those rows
        are v's own memory and the result is written channels-last, with no copy of v and one
        pass over the map instead of two. ``attention``: (groups, heads, c, c); ``v``: (B, C, H, W).
        Returns the projected map stored channels-last.
        """
        groups = {"p": self.stride**2} if phases_grouped else {}
        pattern = "(b p) C h w -> b (p h w) C" if phases_grouped else "b C h w -> b (h w) C"
        projection = rearrange(self.project_out.weight, "o (m c) 1 1 -> o m c", m=self.heads)
        mixing = rearrange(torch.einsum("omk,gmkc->gomc", projection, attention), "g o m c -> g (m c) o")
        out = torch.bmm(rearrange(v, pattern, **groups), mixing)
        if self.project_out.bias is not None:
            out = out + self.project_out.bias
        height, width = v.shape[-2:]
        back = "b (p h w) C -> (b p) h w C" if phases_grouped else "b (h w) C -> b h w C"
        return rearrange(out, back, h=height, w=width, **groups).permute(0, 3, 1, 2)  # channels-last
