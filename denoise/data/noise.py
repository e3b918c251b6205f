"""Synthetic noise models, applied as transforms to clean images in [0, 1].

Every model is called as ``noise(clean, generator)`` on one (C, H, W) image and returns the
noisy image. Amounts (sigma) are on the 0-255 scale, as in the literature, and converted.
Passing a seeded generator makes the realisation reproducible (validation, test, the demo's
fixed noisy images); passing a fresh one gives new noise at every call (training).
"""

from __future__ import annotations

from collections.abc import Sequence

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
    """Spatially correlated Gaussian noise: white noise blurred by a k x k box kernel.

    The kernel is normalised to unit L2 norm, so the per-pixel standard deviation stays sigma.
    Pixels closer than k share white-noise samples and are correlated, as in camera sRGB noise
    after demosaicking; pixels k or more apart are independent. So pixel-shuffle down-sampling
    with a factor >= k removes the correlation, which is why PD matters for such noise (k = 2
    with PD 2; a 3x3 box still correlates pixels 2 apart by 1/3).
    """

    def __init__(self, sigma: float | Sequence[float] = 25.0, kernel_size: int = 3, clip: bool = True):
        self.low, self.high = _sigma_range(sigma, "sigma")
        if kernel_size < 1:
            raise ConfigError(f"noise.kernel_size: expected a size >= 1, got {kernel_size}")
        self.kernel_size, self.clip = kernel_size, clip

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        sigma = _draw(self.low, self.high, generator) / 255.0
        c, h, w = image.shape
        extra = self.kernel_size - 1  # a valid convolution of this larger field is h x w
        white = torch.randn((c, 1, h + extra, w + extra), generator=generator, dtype=image.dtype)
        kernel = torch.ones(1, 1, self.kernel_size, self.kernel_size, dtype=image.dtype)
        kernel = kernel / kernel.norm()
        noise = F.conv2d(white, kernel)[:, 0]
        noisy = image + sigma * noise
        return noisy.clamp(0, 1) if self.clip else noisy


class PoissonGaussianNoise:
    """Signal-dependent camera noise: ``Poisson(peak * x) / peak + N(0, sigma^2)``.

    ``peak`` is the photon count of a white pixel (lower = noisier), ``sigma`` the read noise on
    the 0-255 scale; each a number or a range [low, high] drawn per image. The noisy value has
    mean ``x`` and variance ``x / peak + (sigma / 255)^2``.
    """

    def __init__(
        self, peak: float | Sequence[float] = 30.0, sigma: float | Sequence[float] = 5.0, clip: bool = False
    ):
        self.peak_low, self.peak_high = _sigma_range(peak, "peak")
        if self.peak_low <= 0:
            raise ConfigError(f"noise.peak: expected photon counts > 0, got {peak!r}")
        self.low, self.high = _sigma_range(sigma, "sigma")
        self.clip = clip

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        peak = _draw(self.peak_low, self.peak_high, generator)
        sigma = _draw(self.low, self.high, generator) / 255.0
        shot = torch.poisson(image.clamp(min=0) * peak, generator=generator) / peak
        noisy = shot + sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype)
        return noisy.clamp(0, 1) if self.clip else noisy.to(image.dtype)


# ------------------------------------------------------------------------------------------
# Hyperspectral noise (QRNN3D convention; REFERENCE.md section 3). Images are (bands, H, W) in
# [0, 1]; sigmas are on the 0-255 scale; nothing is clipped. Stripes and deadlines are constant
# along a column (a whole image column of one band).


def _count(fraction: float, total: int) -> int:
    return int(fraction * total + 1e-6)  # 0.3333333333 of 300 bands is 100


def _fraction(value: float, name: str) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"noise.{name}: expected a fraction in [0, 1], got {value!r}")
    return float(value)


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [low, high], both included."""
    return low + int(torch.randint(0, high - low + 1, (), generator=generator))


class NonIIDGaussianNoise:
    """Gaussian noise whose sigma differs per band, each drawn uniformly from ``sigmas`` (0-255)."""

    def __init__(self, sigmas: Sequence[float] = (10.0, 30.0, 50.0, 70.0)):
        self.sigmas = torch.tensor([float(s) for s in sigmas]) / 255.0
        if self.sigmas.numel() == 0 or bool((self.sigmas < 0).any()):
            raise ConfigError(f"noise.sigmas: expected a non-empty list of sigmas >= 0, got {list(sigmas)!r}")

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        choice = torch.randint(0, len(self.sigmas), (image.shape[0],), generator=generator)
        sigma = self.sigmas[choice].to(image.dtype)[:, None, None]
        return image + sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype)


class _BandNoise:
    """Noise that hits ``band_fraction`` of the bands, on top of optional non-i.i.d. Gaussian noise.

    QRNN3D's "stripe", "deadline" and "impulse" cases are non-i.i.d. Gaussian noise
    (``sigmas``) plus the structured noise on a third of the bands; ``sigmas: null`` gives the
    structured noise alone.
    """

    def __init__(self, band_fraction: float, sigmas: Sequence[float] | None):
        self.band_fraction = _fraction(band_fraction, "band_fraction")
        self.gaussian = NonIIDGaussianNoise(sigmas) if sigmas else None

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noisy = self.gaussian(image, generator) if self.gaussian is not None else image.clone()
        bands = image.shape[0]
        chosen = torch.randperm(bands, generator=generator)[: _count(self.band_fraction, bands)]
        return self.apply(noisy, chosen.tolist(), generator)

    def apply(self, noisy: torch.Tensor, bands: list[int], generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError


class _ColumnNoise(_BandNoise):
    def __init__(self, band_fraction: float, column_fraction: Sequence[float], sigmas: Sequence[float] | None):
        super().__init__(band_fraction, sigmas)
        low, high = (float(column_fraction),) * 2 if isinstance(column_fraction, (int, float)) else column_fraction
        self.column_low, self.column_high = _fraction(low, "column_fraction"), _fraction(high, "column_fraction")
        if self.column_high < self.column_low:
            raise ConfigError(f"noise.column_fraction: expected [low, high] with low <= high, got {column_fraction!r}")

    def columns(self, width: int, generator: torch.Generator | None) -> torch.Tensor:
        """A random set of between column_low and column_high of the ``width`` columns."""
        count = _randint(_count(self.column_low, width), _count(self.column_high, width), generator)
        return torch.randperm(width, generator=generator)[:count]


class StripeNoise(_ColumnNoise):
    """Stripes: on each hit band, 5-15% of the columns shifted by a constant in [-amount, amount]."""

    def __init__(
        self,
        band_fraction: float = 1 / 3,
        column_fraction: Sequence[float] = (0.05, 0.15),
        amount: float = 0.25,
        sigmas: Sequence[float] | None = (10.0, 30.0, 50.0, 70.0),
    ):
        super().__init__(band_fraction, column_fraction, sigmas)
        self.amount = float(amount)

    def apply(self, noisy: torch.Tensor, bands: list[int], generator: torch.Generator | None) -> torch.Tensor:
        for band in bands:
            cols = self.columns(noisy.shape[-1], generator)
            offsets = (torch.rand(len(cols), generator=generator, dtype=noisy.dtype) * 2 - 1) * self.amount
            noisy[band, :, cols] -= offsets
        return noisy


class DeadlineNoise(_ColumnNoise):
    """Dead lines: on each hit band, 5-15% of the columns set to zero."""

    def __init__(
        self,
        band_fraction: float = 1 / 3,
        column_fraction: Sequence[float] = (0.05, 0.15),
        sigmas: Sequence[float] | None = (10.0, 30.0, 50.0, 70.0),
    ):
        super().__init__(band_fraction, column_fraction, sigmas)

    def apply(self, noisy: torch.Tensor, bands: list[int], generator: torch.Generator | None) -> torch.Tensor:
        for band in bands:
            noisy[band, :, self.columns(noisy.shape[-1], generator)] = 0.0
        return noisy


class ImpulseNoise(_BandNoise):
    """Salt and pepper: on each hit band, a ratio drawn from ``amounts`` of the pixels set to 1 or 0.

    ``salt_ratio`` of the hit pixels become 1 (salt), the others 0 (pepper).
    """

    def __init__(
        self,
        band_fraction: float = 1 / 3,
        amounts: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
        salt_ratio: float = 0.5,
        sigmas: Sequence[float] | None = (10.0, 30.0, 50.0, 70.0),
    ):
        super().__init__(band_fraction, sigmas)
        self.amounts = [_fraction(a, "amounts") for a in amounts]
        if not self.amounts:
            raise ConfigError("noise.amounts: expected a non-empty list of ratios")
        self.salt_ratio = _fraction(salt_ratio, "salt_ratio")

    def apply(self, noisy: torch.Tensor, bands: list[int], generator: torch.Generator | None) -> torch.Tensor:
        shape = noisy.shape[-2:]
        for band in bands:
            amount = self.amounts[int(torch.randint(0, len(self.amounts), (), generator=generator))]
            hit = torch.rand(shape, generator=generator) < amount
            salt = torch.rand(shape, generator=generator) < self.salt_ratio
            noisy[band][hit & salt] = 1.0
            noisy[band][hit & ~salt] = 0.0
        return noisy


class MixtureNoise:
    """QRNN3D's mixture case: non-i.i.d. Gaussian noise on every band, then stripes, deadlines and
    impulse noise, each on its own ``band_fraction`` of the bands (disjoint sets)."""

    def __init__(
        self,
        sigmas: Sequence[float] | None = (10.0, 30.0, 50.0, 70.0),
        band_fraction: float = 1 / 3,
        column_fraction: Sequence[float] = (0.05, 0.15),
        stripe_amount: float = 0.25,
        impulse_amounts: Sequence[float] = (0.1, 0.3, 0.5, 0.7),
        salt_ratio: float = 0.5,
    ):
        self.gaussian = NonIIDGaussianNoise(sigmas) if sigmas else None
        self.band_fraction = _fraction(band_fraction, "band_fraction")
        if self.band_fraction > 1 / 3 + 1e-9:
            raise ConfigError(f"noise.band_fraction: three disjoint sets need a fraction <= 1/3, got {band_fraction}")
        self.parts = [
            StripeNoise(band_fraction, column_fraction, stripe_amount, sigmas=None),
            DeadlineNoise(band_fraction, column_fraction, sigmas=None),
            ImpulseNoise(band_fraction, impulse_amounts, salt_ratio, sigmas=None),
        ]

    def __call__(self, image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noisy = self.gaussian(image, generator) if self.gaussian is not None else image.clone()
        bands = image.shape[0]
        order = torch.randperm(bands, generator=generator).tolist()
        count = _count(self.band_fraction, bands)
        for i, part in enumerate(self.parts):
            noisy = part.apply(noisy, order[i * count : (i + 1) * count], generator)
        return noisy
