"""Padding to a multiple and cropping back."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "reflect") -> torch.Tensor:
    """Pad the bottom and right of ``x`` so both sides are multiples of ``multiple``.

    ``reflect`` keeps the parity of every copied pixel (index -k mirrors k, H-1+k mirrors H-1-k),
    which is what a stride-2 blind-spot network needs; it falls back to zeros when the map is
    too small to reflect. ``constant`` pads with zeros and is safe for any stride.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "reflect" and (pad_h >= h or pad_w >= w):
        mode = "constant"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def crop_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    return x[..., :height, :width]
