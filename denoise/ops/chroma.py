"""Chroma smoothing: take the colour noise a denoised photo keeps out of it, guided by its own luma.

A network trained for minutes on a few photos removes most of the noise but leaves low-frequency
colour blotches (red / green mottling) in flat areas, most visibly in the dark ones. Natural images
are close to a local linear model between their channels (within a small window, colour is an
affine function of brightness: the guided filter's model, He, Sun, Tang, ECCV 2010), so the
estimate's chroma is replaced by its best local affine fit on the estimate's luma:

    opponent colours (orthonormal): Y = (R+G+B)/sqrt 3, C1 = (R-G)/sqrt 2, C2 = (R+G-2B)/sqrt 6
    C <- guided filter of C with guide Y (window 2 radius + 1, regulariser eps)

Colour edges that follow a brightness edge stay sharp (the affine fit follows the guide), while
blotches that have no counterpart in the luma are averaged away; the luma itself is untouched.
Only 3-channel images are changed. It runs on the whole image after the network, before detail
restoration (:mod:`denoise.ops.detail`), which then gives back the colour that the noisy photo
shows significantly. It is not part of any paper's protocol; the photos recipe uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange

from denoise.ops.detail import box_mean

# Rows: luma and two chroma axes; orthonormal, so its transpose is its inverse.
OPPONENT = torch.tensor(
    [
        [1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)],
        [1 / math.sqrt(2), -1 / math.sqrt(2), 0.0],
        [1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)],
    ],
    dtype=torch.float64,
)


@dataclass(frozen=True)
class ChromaSmoothing:
    radius: int = 8        # pixels: the window is 2 * radius + 1 wide
    eps: float = 1e-3      # regulariser of the local fit, in squared luma units (images in [0, 1])

    def __post_init__(self) -> None:
        if isinstance(self.radius, bool) or not isinstance(self.radius, int) or self.radius < 1:
            raise ValueError(f"radius={self.radius!r}: expected an integer >= 1")
        if not self.eps > 0:
            raise ValueError(f"eps={self.eps!r}: expected a number > 0")


def smooth_chroma(image: torch.Tensor, options: ChromaSmoothing | None = None) -> torch.Tensor:
    """(B, 3, H, W) ``image`` with its chroma fitted locally to its luma; other channel counts as given."""
    options = options or ChromaSmoothing()
    if image.dim() != 4:
        raise ValueError(f"smooth_chroma: expected a (B, C, H, W) image, got {tuple(image.shape)}")
    if image.shape[1] != 3:
        return image
    matrix = OPPONENT.to(image.dtype).to(image.device)
    opponent = torch.einsum("oc,bchw->bohw", matrix, image)
    luma, chroma = opponent[:, :1], opponent[:, 1:]
    smoothed = guided_filter(chroma, luma.expand_as(chroma), options.radius, options.eps)
    return torch.einsum("oc,bohw->bchw", matrix, torch.cat([luma, smoothed], dim=1))  # the inverse: the transpose


def guided_filter(source: torch.Tensor, guide: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Each channel of ``source`` as the window-averaged local affine fit ``a * guide + b``
    (least squares in every (2 radius + 1)^2 window, ridge ``eps`` on ``a``); same-shape (B, C, H, W)."""
    size = 2 * radius + 1
    channels = source.shape[1]
    source, guide = (rearrange(x, "b c h w -> (b c) 1 h w") for x in (source, guide))  # box_mean's layout
    mean_guide, mean_source = box_mean(guide, size), box_mean(source, size)
    covariance = box_mean(guide * source, size) - mean_guide * mean_source
    variance = box_mean(guide * guide, size) - mean_guide * mean_guide
    slope = covariance / (variance + eps)
    offset = mean_source - slope * mean_guide
    fitted = box_mean(slope, size) * guide + box_mean(offset, size)
    return rearrange(fitted, "(b c) 1 h w -> b c h w", c=channels)
