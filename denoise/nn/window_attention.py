"""TBSN's masked window self-attention (M-WSA), in its literal and phase-split forms.

Literal form (full resolution, as in the paper): non-overlapping 8x8 query windows attend to
12x12 key/value windows centred on them (overlap ratio 0.5, zero padding at borders), with
HaloNet-style decomposed relative position logits and a fixed mask that keeps only keys at
offsets (dy, dx) that are multiples of the phase stride: 36 of 144 keys for stride 2.

Phase-split form (default): the same keys are exactly those of plain window attention with
4x4 query and 6x6 key windows on each phase sub-image, so the masked 3/4 of the logits are
never computed. Both forms share one set of parameters, including the relative tables, which
are always indexed in full-resolution offsets; a state dict moves between forms unchanged.

:class:`MaskedWindowAttention` computes it as the paper writes it (key windows by ``unfold``,
the relative logits and the mask as one attention-sized bias);
:class:`FastMaskedWindowAttention` (the ``fast`` kernels) computes the same numbers without
the attention-sized bias tensor, in the input's layout.

Relative tables follow the official TBSN / HaloNet convention, so official weights load by
renaming alone and training starts from the paper's initialisation and steps: the logit of
query i and key j (indices in the 8-wide query and 12-wide key windows) reads row
``j - i + 11`` of each (2 * 12 - 1)-row table, that is row ``offset + halo + 11`` for the
full-resolution offset ``(j - halo) - i``, and it multiplies q scaled by ``head_dim ** -0.5``
(the same scaled q as the content logits). Tables start as ``randn * head_dim ** -0.5``, as in
HaloNet and the official code. Checkpoints saved under an earlier convention are converted when
they load (:mod:`denoise.lit.checkpoint_format`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.errors import ConfigError
from denoise.nn.autograd import KeyWindows
from denoise.nn.fast_layers import PointwiseConv2d, layout_like
from denoise.nn.forms import check_form


class MaskedWindowAttention(nn.Module):
    """M-WSA on a (B, dim, H, W) map whose sides are multiples of the window it runs at."""

    pointwise = nn.Conv2d  # the class of the 1x1 convs; the fast kernels use its fast twin

    def __init__(
        self,
        dim: int,
        heads: int = 2,
        head_dim: int = 16,
        window: int = 8,
        overlap: float = 0.5,
        phase_stride: int = 2,
        form: str = "phase",
        bias: bool = False,
    ):
        super().__init__()
        halo = int(window * overlap) // 2
        check_form(form, "MaskedWindowAttention")
        if window % phase_stride or halo % phase_stride:
            raise ConfigError(
                f"MaskedWindowAttention: window={window} and halo={halo} (= window * overlap / 2) must be "
                f"multiples of the phase stride {phase_stride}, or the mask is not blind-spot safe"
            )
        self.heads, self.head_dim, self.form = heads, head_dim, form
        full_key_window = window + 2 * halo
        # Geometry the forward pass runs at: full resolution (literal) or phase sub-images.
        step = phase_stride if form == "phase" else 1
        self.window, self.halo = window // step, halo // step
        self.key_window = self.window + 2 * self.halo

        inner = heads * head_dim
        self.qkv = self.pointwise(dim, inner * 3, 1, bias=bias)
        self.project_out = self.pointwise(inner, dim, 1, bias=bias)
        self.rel_height = nn.Parameter(torch.randn(2 * full_key_window - 1, head_dim) * head_dim**-0.5)
        self.rel_width = nn.Parameter(torch.randn(2 * full_key_window - 1, head_dim) * head_dim**-0.5)

        # Full-resolution offset between key j of the key window and query i of the query window.
        # Official row j - i + (12 - 1) = offset + halo + 11: offset 0 sits at row 13, not at the
        # table's centre; rows 0-3 are never read (offsets range over -9..9).
        query = torch.arange(self.window)[:, None]
        key = torch.arange(self.key_window)[None, :]
        offset = (key - self.halo - query) * step
        self.register_buffer("rel_index", offset + halo + full_key_window - 1, persistent=False)
        self.scale = head_dim**-0.5
        # Literal form: -inf on keys of another phase (offsets not a multiple of the stride).
        off_phase = (offset % phase_stride) != 0
        blocked = off_phase[:, None, :, None] | off_phase[None, :, None, :]  # (qy, qx, ky, kx)
        bias_mask = torch.zeros(blocked.shape).masked_fill(blocked, float("-inf"))
        self.register_buffer("mask", rearrange(bias_mask, "qy qx ky kx -> (qy qx) (ky kx)"), persistent=False)
        self.masked = bool(blocked.any())

    def relative_logits(self, q: torch.Tensor) -> torch.Tensor:
        """q: (..., wy, wx, d) -> (..., wy*wx, ky*kx) decomposed relative position logits."""
        table_h = self.rel_height[self.rel_index]  # (wy, ky, d)
        table_w = self.rel_width[self.rel_index]  # (wx, kx, d)
        logits_h = torch.einsum("...yxd,ykd->...yxk", q, table_h)
        logits_w = torch.einsum("...yxd,xkd->...yxk", q, table_w)
        logits = logits_h[..., :, None] + logits_w[..., None, :]
        return rearrange(logits, "... y x ky kx -> ... (y x) (ky kx)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, h, w = x.shape
        if h % self.window or w % self.window:
            raise ValueError(
                f"MaskedWindowAttention: map {h}x{w} is not a multiple of the window {self.window}"
            )
        return self.attend(x)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """The paper's computation: key windows by ``unfold``, the relative logits and the mask as
        an attention-sized bias of ``scaled_dot_product_attention``."""
        h, win, key_win = x.shape[-2], self.window, self.key_window
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q = rearrange(q, "b (m d) (y wy) (x wx) -> b m (y x) wy wx d", m=self.heads, wy=win, wx=win)
        k, v = (
            rearrange(F.unfold(t, key_win, padding=self.halo, stride=win), "b (m d kk) n -> b m n kk d",
                      m=self.heads, kk=key_win**2)
            for t in (k, v)
        )
        # The relative logits use q scaled like the content logits (official convention).
        bias = self.relative_logits(q * self.scale)
        if self.masked:
            bias = bias + self.mask.to(bias.dtype)
        q = rearrange(q, "b m n wy wx d -> b m n (wy wx) d")
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.project_out(rearrange(out, "b m (y x) (wy wx) d -> b (m d) (y wy) (x wx)", y=h // win, wy=win))


class FastMaskedWindowAttention(MaskedWindowAttention):
    """:class:`MaskedWindowAttention` in fewer passes over memory, in the input's layout.

    Key windows are copied once from strided views (:class:`denoise.nn.autograd.KeyWindows`),
    and the two relative-logit tables (and, in the literal form, the mask) are added in place to
    the content logits, so no attention-sized bias tensor is built.
    """

    pointwise = PointwiseConv2d

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        batch, h = x.shape[0], x.shape[-2]
        win, key_win = self.window, self.key_window
        q, k, v = self.qkv(x).chunk(3, dim=1)
        q = rearrange(q * self.scale, "b (m d) (y wy) (x wx) -> (b m y x) wy wx d", m=self.heads, wy=win, wx=win)
        k, v = self.key_windows(k), self.key_windows(v).transpose(1, 2)
        logits = torch.bmm(rearrange(q, "n wy wx d -> n (wy wx) d"), k)
        grid = logits.view(-1, win, win, key_win, key_win)  # (n, wy, wx, ky, kx)
        grid += torch.einsum("nyxd,ykd->nyxk", q, self.rel_height[self.rel_index])[..., :, None]
        grid += torch.einsum("nyxd,xkd->nyxk", q, self.rel_width[self.rel_index])[..., None, :]
        if self.masked:
            logits += self.mask.to(logits.dtype)
        out = torch.bmm(logits.softmax(dim=-1), v)
        out = rearrange(
            out, "(b m y x) (wy wx) d -> b (y wy) (x wx) (m d)", b=batch, m=self.heads, y=h // win, wy=win
        )
        return self.project_out(layout_like(out.permute(0, 3, 1, 2), x))

    def key_windows(self, t: torch.Tensor) -> torch.Tensor:
        """(b, m*d, H, W) -> (b*m*y*x, d, ky*kx): the zero-padded key window of every query window."""
        return KeyWindows.apply(t, self.heads, self.window, self.halo)
