"""Phase split and merge: the exact blind-spot rule as a reshape.

A map is split into its s*s phase sub-images (position mod s), stacked in the batch as
``(b s1 s2)``: entry ``b * s*s + s1 * s + s2`` holds the pixels at rows ``s1 + s*i`` and
columns ``s2 + s*j`` of image ``b``. Any network run on these entries independently reads,
for an output position, only inputs of that position's phase.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange


def phase_split(x: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, C, H, W) -> (B*s*s, C, H/s, W/s); H and W must be multiples of ``stride``."""
    if stride == 1:
        return x
    h, w = x.shape[-2:]
    if h % stride or w % stride:
        raise ValueError(f"phase_split: size {h}x{w} is not a multiple of the stride {stride}")
    return rearrange(x, "b c (h s1) (w s2) -> (b s1 s2) c h w", s1=stride, s2=stride)


def phase_merge(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Exact inverse of :func:`phase_split`."""
    if stride == 1:
        return x
    return rearrange(x, "(b s1 s2) c h w -> b c (h s1) (w s2)", s1=stride, s2=stride)


def phase_pixel_unshuffle(x: torch.Tensor, factor: int, stride: int) -> torch.Tensor:
    """Parity-preserving pixel-unshuffle: (C, H, W) -> (C*f*f, H/f, W/f) inside each phase.

    A plain pixel-unshuffle would put pixels of different phases in one position and break the
    blind spot; doing it per phase keeps every low-resolution position on a single phase.
    """
    return phase_merge(F.pixel_unshuffle(phase_split(x, stride), factor), stride)


def phase_pixel_shuffle(x: torch.Tensor, factor: int, stride: int) -> torch.Tensor:
    """Exact inverse of :func:`phase_pixel_unshuffle`."""
    return phase_merge(F.pixel_shuffle(phase_split(x, stride), factor), stride)
