"""Non-local means blend: average a denoised photo with a non-local means estimate of the noisy one.

A student distilled for minutes from a blind-spot teacher errs the way its teacher does: texture
the blind spot and the pixel-shuffle cannot see is smoothed away, and noise that is correlated
over more pixels than the PD factor is kept as low-frequency blotches. Non-local means (Buades,
Coll, Morel, CVPR 2005) errs differently: it averages pixels whose surrounding patches look alike,
wherever they are in a wide search window, so it keeps repeated texture, and pixels far apart
carry independent noise even where the noise is spatially correlated. Averaging two estimates
whose errors differ lowers the error of both; ``weight`` is the non-local estimate's share.

The non-local estimate needs the noise level, which is read from the photo itself: each channel's
``sigma_c`` is the robust standard deviation (1.4826 x the median absolute deviation) of its
``noisy - denoised``. Differences are measured in units of each channel's noise (a camera's blue
channel is often noisier than its green): the patch distance ``d2`` is the squared difference
``((p_c - q_c) / sigma_c)^2`` averaged over the patch and the channels, and a candidate's weight is
``exp(-max(d2 - 2, 0) / h_factor^2)``. With one sigma for all channels these are the weights of
scikit-image's fast mode with ``sigma`` given and ``h = h_factor * sigma``. Candidates are taken on
a grid of ``search_stride`` pixels over a ``2 search_radius + 1`` window: a wide window buys the
far, independent samples, and the stride keeps the cost of a window of radius 21 that of a
radius-7 window searched densely. ``search_stride=1`` is the textbook search
(``tests/test_nonlocal_means.py`` compares it with scikit-image's ``denoise_nl_means``).

It runs on the whole image after detail restoration (:mod:`denoise.ops.detail`), in strips of
``strip_rows`` rows so that memory stays a few strips, not a few photos. It is not part of any
paper's protocol; the photos recipe uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from denoise.ops.detail import box_mean, subsampled_quantile

# Median absolute deviation -> standard deviation of a Gaussian.
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class NonLocalMeans:
    search_radius: int = 21   # pixels: candidates lie within this distance in x and in y
    search_stride: int = 3    # pixels between candidate positions (1: every position)
    patch_radius: int = 2     # patches are 2 * patch_radius + 1 wide
    h_factor: float = 0.8     # h = h_factor * sigma: how fast a candidate's weight falls with distance
    strip_rows: int = 512     # rows computed at once

    def __post_init__(self) -> None:
        for name, least in (("search_radius", 1), ("search_stride", 1), ("patch_radius", 0), ("strip_rows", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}={value!r}: expected an integer >= {least}")
        if not self.h_factor > 0:
            raise ValueError(f"h_factor={self.h_factor!r}: expected a number > 0")


def blend_nonlocal(
    noisy: torch.Tensor, denoised: torch.Tensor, weight: float, options: NonLocalMeans | None = None
) -> torch.Tensor:
    """``(1 - weight) * denoised + weight * NLM(noisy)``, each image with its own noise level; (B, C, H, W)."""
    options = options or NonLocalMeans()
    if noisy.shape != denoised.shape or noisy.dim() != 4:
        raise ValueError(f"blend_nonlocal: noisy {tuple(noisy.shape)} and denoised {tuple(denoised.shape)} "
                         "must be the same (B, C, H, W) shape")
    if not 0 <= weight <= 1:
        raise ValueError(f"blend_nonlocal: weight={weight!r}: expected a number in [0, 1]")
    if weight == 0:
        return denoised
    noisy = noisy.to(denoised.dtype)
    estimates = []
    for n, d in zip(noisy, denoised):
        sigmas = residual_sigmas(n, d)
        # A channel with nothing taken out (most of it saturated, say) has no noise scale: keep d.
        estimates.append(nonlocal_means(n[None], sigmas, options) if min(sigmas) > 0 else d[None])
    return torch.lerp(denoised, torch.cat(estimates), weight)


def residual_sigmas(noisy: torch.Tensor, denoised: torch.Tensor) -> list[float]:
    """The noise level a denoiser took out of each channel of (C, H, W) images: the robust standard
    deviation of ``noisy - denoised``."""
    levels = []
    for residual in noisy - denoised:
        deviation = (residual - subsampled_quantile(residual, 0.5)).abs()
        levels.append(MAD_TO_SIGMA * float(subsampled_quantile(deviation, 0.5)))
    return levels


def nonlocal_means(
    noisy: torch.Tensor, sigma: float | list[float], options: NonLocalMeans | None = None
) -> torch.Tensor:
    """Non-local means of (B, C, H, W) ``noisy`` with noise level ``sigma``, one for all channels or one
    per channel (see the module docstring)."""
    options = options or NonLocalMeans()
    if noisy.dim() != 4:
        raise ValueError(f"nonlocal_means: expected a (B, C, H, W) image, got {tuple(noisy.shape)}")
    sigmas = torch.tensor(sigma, dtype=noisy.dtype, device=noisy.device).flatten()
    if sigmas.numel() not in (1, noisy.shape[1]):
        raise ValueError(f"nonlocal_means: {sigmas.numel()} noise levels for {noisy.shape[1]} channels; "
                         "expected one, or one per channel")
    sigmas = sigmas.expand(noisy.shape[1])
    if not (sigmas > 0).all():
        return noisy  # a channel nothing was taken out of: no scale to compare its patches in
    height = noisy.shape[-2]
    halo = options.search_radius + options.patch_radius  # rows a strip's candidates and patches reach
    strips = []
    for top in range(0, height, options.strip_rows):
        bottom = min(height, top + options.strip_rows)
        start, stop = max(0, top - halo), min(height, bottom + halo)
        strip = nonlocal_means_whole(noisy[..., start:stop, :], sigmas, options)
        strips.append(strip[..., top - start:bottom - start, :])
    return torch.cat(strips, dim=-2)


def nonlocal_means_whole(noisy: torch.Tensor, sigmas: torch.Tensor, options: NonLocalMeans) -> torch.Tensor:
    """Non-local means over the whole of ``noisy`` at once (reflected at its borders)."""
    channels, height, width = noisy.shape[-3:]
    radius, patch = options.search_radius, options.patch_radius
    padded = reflect_pad(noisy, radius)
    # In units of each channel's noise: distances summed over the channels here, averaged in the scale.
    units = rearrange(1 / sigmas, "c -> 1 c 1 1")
    scaled, scaled_padded = noisy * units, padded * units
    scale = -1.0 / (channels * options.h_factor**2)
    bias = 2.0 * channels
    numerator, denominator = torch.zeros_like(noisy), torch.zeros_like(noisy[:, :1])
    reach = radius - radius % options.search_stride
    offsets = range(-reach, reach + 1, options.search_stride)
    for dy in offsets:
        for dx in offsets:
            window = (..., slice(radius + dy, radius + dy + height), slice(radius + dx, radius + dx + width))
            candidate = padded[window]
            distance = box_mean((scaled - scaled_padded[window]).square_().sum(1, keepdim=True), 2 * patch + 1)
            weight = distance.sub_(bias).clamp_min_(0).mul_(scale).exp_()
            numerator.addcmul_(weight, candidate)
            denominator.add_(weight)
    return numerator / denominator


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect padding that also works when ``pad`` exceeds the image (reflected again as needed)."""
    while pad > 0:
        step = min(pad, x.shape[-1] - 1, x.shape[-2] - 1)
        if step < 1:
            return F.pad(x, (pad,) * 4, mode="replicate")
        x = F.pad(x, (step,) * 4, mode="reflect")
        pad -= step
    return x
