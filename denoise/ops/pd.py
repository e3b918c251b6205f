"""Pixel-shuffle down-sampling (PD) and its inverse.

PD with factor f turns an image into its f*f sub-images of every f-th pixel, so that noise
correlated over fewer than f pixels becomes independent between neighbours of a sub-image.
Two layouts exist in the literature:

- ``batch``: sub-images stacked in the batch (TBSN); identical to :func:`phase_split`.
- ``mosaic``: sub-images, each zero-padded by ``pad``, tiled into one f x f mosaic (AP-BSN).

Sizes that are not multiples of f are reflect-padded and cropped back by :func:`pd_up`.
Note on exactness: when padding is needed, a reflected copy of a border pixel can land in its
own sub-image, so the last rows/columns of such an image see their own noisy value. Training
crops are multiples of f and never hit this; inference pads first with :func:`pad_for_pd`,
whose copies always land in another sub-image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.ops.phase import phase_merge, phase_split

LAYOUTS = ("batch", "mosaic")


def pd_down(x: torch.Tensor, factor: int, layout: str = "batch", pad: int = 0) -> torch.Tensor:
    """(B, C, H, W) -> sub-images in ``layout``; see :func:`pd_up` for the inverse."""
    if layout not in LAYOUTS:
        raise ValueError(f"pd_down: layout must be one of {LAYOUTS}, got {layout!r}")
    if factor == 1:
        return x
    x = pad_to_multiple(x, factor, mode="reflect")
    if layout == "batch":
        return phase_split(x, factor)
    subs = rearrange(x, "b c (h f1) (w f2) -> b c f1 f2 h w", f1=factor, f2=factor)
    if pad:
        subs = F.pad(subs, (pad, pad, pad, pad))
    return rearrange(subs, "b c f1 f2 h w -> b c (f1 h) (f2 w)")


def pd_up(
    y: torch.Tensor, factor: int, size: tuple[int, int], layout: str = "batch", pad: int = 0
) -> torch.Tensor:
    """Inverse of :func:`pd_down`: back to (B, C, H, W) with ``size = (H, W)`` of the original."""
    if layout not in LAYOUTS:
        raise ValueError(f"pd_up: layout must be one of {LAYOUTS}, got {layout!r}")
    if factor == 1:
        return y
    if layout == "batch":
        x = phase_merge(y, factor)
    else:
        subs = rearrange(y, "b c (f1 h) (f2 w) -> b c f1 f2 h w", f1=factor, f2=factor)
        if pad:
            subs = subs[..., pad:-pad, pad:-pad]
        x = rearrange(subs, "b c f1 f2 h w -> b c (h f1) (w f2)")
    return crop_to(x, *size)


def first_sub_image(y: torch.Tensor, factor: int) -> torch.Tensor:
    """From a ``batch``-layout PD output keep only sub-image 0 of each image (TBSN training)."""
    return rearrange(y, "(b p) c h w -> b p c h w", p=factor * factor)[:, 0]


def pad_for_pd(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``factor`` with copies that change sub-image.

    Padded row ``H - 1 + j`` copies row ``H - j`` (a mirror including the edge), whose distance
    ``2j - 1`` is not a multiple of ``factor`` (always so for factor 2), else row ``H - j - 1``.
    Plain reflection (distance 2j) puts a copy of a pixel into its own sub-image next to it,
    where a blind-spot network would read the pixel's own noise. Too small images: zeros.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    if pad_h == 0 and pad_w == 0:
        return x
    if height < pad_h + 2 or width < pad_w + 2:
        return F.pad(x, (0, pad_w, 0, pad_h))

    def sources(length: int, pad: int) -> list[int]:
        return [length - j if (2 * j - 1) % factor else length - j - 1 for j in range(1, pad + 1)]

    if pad_h:
        x = torch.cat([x, x[..., sources(height, pad_h), :]], dim=-2)
    if pad_w:
        x = torch.cat([x, x[..., :, sources(width, pad_w)]], dim=-1)
    return x
