"""Pixel-shuffle down-sampling (PD) and its inverse.

PD with factor f turns an image into its f*f sub-images of every f-th pixel, so that noise
correlated over fewer than f pixels becomes independent between neighbours of a sub-image.
Two layouts exist in the literature:

- ``batch``: sub-images stacked in the batch (TBSN); identical to :func:`phase_split`.
- ``mosaic``: sub-images, each zero-padded by ``pad``, tiled into one f x f mosaic (AP-BSN).

Sizes that are not multiples of f are reflect-padded and cropped back by :func:`pd_up`.
Note on exactness: when padding is needed, a reflected copy of a border pixel can land in its
own sub-image, so the last rows/columns of such an image see their own noisy value. Training
crops are multiples of f and never hit this.
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
