"""Synthetic noise models, applied as transforms to clean images in [0, 1].

Every model is called as ``noise(clean, generator)`` on one (C, H, W) image and returns the
noisy image. Amounts (sigma) are on the 0-255 scale, as in the literature, and converted.
Passing a seeded generator makes the realisation reproducible (validation, test, the demo's
fixed noisy images); passing a fresh one gives new noise at every call (training).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from denoise.errors import ConfigError


def _sigma_range(sigma: float | Sequence[float], name: str) -> tuple[float, float]:
    values = [float(sigma)] * 2 if isinstance(sigma, (int, float)) else [float(s) for s in sigma]
    if len(values) != 2 or values[0] < 0 or values[1] < values[0]:
        raise ConfigError(f"noise.{name}: expected a number >= 0 or a range [low, high], got {sigma!r}")
    return values[0], values[1]


def _draw(low: float, high: float, generator: torch.Generator | None) -> float:
    if low == high:
        return low
    return low + (high - low) * torch.rand((), generator=generator).item()


class NoNoise:
    """Real noise: the images are already noisy."""

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return image


class GaussianNoise:
    """i.i.d. Gaussian noise, sigma on the 0-255 scale, fixed or drawn per image from a range."""

    def __init__(self, sigma: float | Sequence[float] = 25.0, clip: bool = False):
        self.low, self.high = _sigma_range(sigma, "sigma")
        self.clip = clip

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        sigma = _draw(self.low, self.high, generator) / 255.0
        noisy = image + sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype)
        return noisy.clamp(0, 1) if self.clip else noisy


class CorrelatedGaussianNoise:
    """Spatially correlated Gaussian noise: white noise blurred by a small kernel.

    The kernel is normalised to unit L2 norm, so the per-pixel standard deviation stays sigma;
    neighbours closer than ``kernel_size`` are correlated, as in camera sRGB noise after
    demosaicking. Pixel-shuffle down-sampling with a factor >= kernel_size removes the
    correlation, which is why PD matters for such noise.
    """

    def __init__(self, sigma: float | Sequence[float] = 25.0, kernel_size: int = 3, clip: bool = True):
        self.low, self.high = _sigma_range(sigma, "sigma")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(f"noise.kernel_size: expected an odd size >= 1, got {kernel_size}")
        self.kernel_size, self.clip = kernel_size, clip

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        sigma = _draw(self.low, self.high, generator) / 255.0
        c, h, w = image.shape
        pad = self.kernel_size // 2
        white = torch.randn((c, 1, h + 2 * pad, w + 2 * pad), generator=generator, dtype=image.dtype)
        kernel = torch.ones(1, 1, self.kernel_size, self.kernel_size, dtype=image.dtype)
        kernel = kernel / kernel.norm()
        noise = F.conv2d(white, kernel)[:, 0]
        noisy = image + sigma * noise
        return noisy.clamp(0, 1) if self.clip else noisy
