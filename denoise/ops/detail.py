"""Detail restoration: give back to a denoised image what it took that was not noise.

A network trained for a few minutes on a handful of photos errs in two ways that no amount of
noise explains: it shifts local colour (a saturated region drifts towards grey), and it smooths
texture away along with the noise, which costs more than it gains where the noise is mild. Both
show in the residual ``noisy - estimate``, and both can be undone without a clean reference:

1. Local means. The noise has zero mean, so a wide Gaussian low-pass (``mean_sigma`` pixels) of
   the residual is the estimate's own low-frequency error plus what is left of the noise. Real
   camera noise is spatially correlated, so that remainder is not negligible: its variance is
   the noise variance times the sum of the noise's autocorrelation (measured over lags up to
   ``correlation_lags`` on the flattest pixels) times the kernel's sum of squares. Where the
   low-pass is well above that (``oversubtract`` times), it is added back, with a Wiener gain;
   where it is not, it is noise and stays out.
2. Texture. Where the estimate is right, the residual is pure noise and its local energy is the
   noise variance; where texture was smoothed away, the energy is larger. A local Wiener gain
   ``w = max(0, 1 - oversubtract * noise_var / local_energy)`` returns that fraction of the
   residual (window ``window``).

``noise_var`` is measured on the image itself, per channel and as a function of intensity (real
camera noise grows with the signal): the mean squared residual over the flattest
``flat_fraction`` of the estimate, in ``intensity_bins`` bins. Estimates of local energy are
noisy, so ``oversubtract`` > 1 keeps a gain at zero where the excess is within their scatter
(spectral subtraction's over-subtraction).

It reads the whole image (the noise is measured over it), so it runs once on the whole output,
after tiled inference. It is not part of any paper's protocol; the photos recipe uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

# Quantiles are taken over at most this many samples (a strided subset of larger images):
# torch.quantile has an input-size limit, and a million samples pin a quantile down well.
QUANTILE_SAMPLES = 1 << 20
MIN_BIN_PIXELS = 50


@dataclass(frozen=True)
class DetailRestoration:
    mean_sigma: float = 8.0        # pixels of the local-mean low-pass; 0 skips the local means
    window: int = 9                # side of the texture step's local-energy window (odd); 0 skips it
    oversubtract: float = 2.0      # noise multiple a correction's energy must exceed
    flat_fraction: float = 0.2     # flattest share of the image that measures the noise
    intensity_bins: int = 8
    correlation_lags: int = 3      # the noise's autocorrelation is summed over |dy|, |dx| <= this

    def __post_init__(self) -> None:
        if self.mean_sigma < 0:
            raise ValueError(f"mean_sigma={self.mean_sigma}: expected a number >= 0")
        if self.window < 0 or (self.window and self.window % 2 == 0):
            raise ValueError(f"window={self.window}: expected an odd integer, or 0 to skip the texture step")
        if self.oversubtract <= 0:
            raise ValueError(f"oversubtract={self.oversubtract}: expected a number > 0")
        if not 0 < self.flat_fraction <= 1:
            raise ValueError(f"flat_fraction={self.flat_fraction}: expected a number in (0, 1]")
        if self.intensity_bins < 1:
            raise ValueError(f"intensity_bins={self.intensity_bins}: expected an integer >= 1")
        if self.correlation_lags < 0:
            raise ValueError(f"correlation_lags={self.correlation_lags}: expected an integer >= 0")


def restore_detail(noisy: torch.Tensor, estimate: torch.Tensor, options: DetailRestoration | None = None) -> torch.Tensor:
    """``estimate`` with its local-mean error removed and smoothed-away texture returned; (B, C, H, W)."""
    options = options or DetailRestoration()
    if noisy.shape != estimate.shape or noisy.dim() != 4:
        raise ValueError(f"restore_detail: noisy {tuple(noisy.shape)} and estimate {tuple(estimate.shape)} "
                         "must be the same (B, C, H, W) shape")
    planes = rearrange(estimate, "b c h w -> (b c) 1 1 h w")
    noisy_planes = rearrange(noisy, "b c h w -> (b c) 1 1 h w").to(planes.dtype)
    # One plane at a time: a 12-megapixel photo needs a few plane-sized buffers, not a few images.
    restored = torch.cat([restore_plane(n, e, options) for n, e in zip(noisy_planes, planes)])
    return rearrange(restored, "(b c) 1 h w -> b c h w", b=estimate.shape[0]).to(estimate.dtype)


def restore_plane(noisy: torch.Tensor, estimate: torch.Tensor, options: DetailRestoration) -> torch.Tensor:
    """The two corrections on one (1, 1, H, W) plane."""
    if options.mean_sigma > 0:
        estimate = estimate + local_mean_correction(noisy - estimate, estimate, options)
    if options.window:
        residual = noisy - estimate
        energy = box_mean(residual.square(), options.window)
        flat = flat_pixels(estimate[0], options)
        noise_var = intensity_noise_variance(estimate[0], residual[0], flat, options.intensity_bins)
        estimate = estimate + wiener_gain(energy, options.oversubtract * noise_var) * residual
    return estimate


def local_mean_correction(residual: torch.Tensor, estimate: torch.Tensor, options: DetailRestoration) -> torch.Tensor:
    """The low-pass of ``residual`` where it stands above the noise that survives the low-pass."""
    low = gaussian_blur(residual, options.mean_sigma)
    noise = residual - low  # the residual's high frequencies: noise, where the estimate is flat
    flat = flat_pixels(estimate[0], options)
    noise_var = intensity_noise_variance(estimate[0], noise[0], flat, options.intensity_bins)
    kernel = gaussian_kernel(options.mean_sigma, residual.dtype)
    passed = correlation_sum(noise[0, 0], flat[0], options.correlation_lags)
    expected = noise_var * passed * float(kernel.square().sum()) ** 2  # separable: 2-D sum = (1-D sum)^2
    return wiener_gain(low.square(), options.oversubtract * expected) * low


def wiener_gain(energy: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return (1 - noise / energy.clamp_min(torch.finfo(energy.dtype).tiny)).clamp(0, 1)


def correlation_sum(noise: torch.Tensor, flat: torch.Tensor, lags: int) -> float:
    """Sum of the autocovariance of ``noise`` (H, W) over shifts up to ``lags``, over its variance,
    on the ``flat`` pixels: 1 for white noise, more for noise smeared over neighbouring pixels."""
    height, width = noise.shape
    if height <= 2 * lags or width <= 2 * lags:
        return 1.0
    inner = (slice(lags, height - lags), slice(lags, width - lags))
    centre, mask = noise[inner], flat[inner]
    if not mask.any():
        return 1.0
    variance = float(centre[mask].square().mean())
    if variance <= 0:
        return 1.0
    total = 0.0
    for dy in range(-lags, lags + 1):
        for dx in range(-lags, lags + 1):
            shifted = noise[lags + dy : height - lags + dy, lags + dx : width - lags + dx]
            total += float((centre * shifted)[mask].mean())
    return max(total / variance, 1.0)


def intensity_noise_variance(plane: torch.Tensor, residual: torch.Tensor, flat: torch.Tensor, bins: int) -> torch.Tensor:
    """Per-pixel noise variance of one (1, H, W) plane, interpolated by intensity from the mean
    squared ``residual`` over its ``flat`` pixels in ``bins`` equally filled bins."""
    intensities, energies = plane[flat], residual[flat].square()
    order = torch.argsort(intensities)
    centres, variances = [], []
    for chunk in torch.tensor_split(order, bins):
        if chunk.numel() >= MIN_BIN_PIXELS:
            centres.append(intensities[chunk].mean())
            variances.append(energies[chunk].mean())
    if not centres:  # a tiny image: one variance for all intensities
        return energies.mean().expand_as(plane).unsqueeze(0)
    return interpolate(plane, torch.stack(centres), torch.stack(variances)).unsqueeze(0)


def flat_pixels(plane: torch.Tensor, options: DetailRestoration) -> torch.Tensor:
    """The flattest ``flat_fraction`` of a (1, H, W) plane, by its local variance (5x5)."""
    local_var = box_mean(plane[None].square(), 5)[0] - box_mean(plane[None], 5)[0].square()
    return local_var <= subsampled_quantile(local_var, options.flat_fraction)


def interpolate(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear ``fp(xp)`` at ``x`` (increasing ``xp``), constant beyond its ends, like numpy.interp."""
    if xp.numel() == 1:
        return fp.expand_as(x)
    right = torch.searchsorted(xp, x.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1, f0, f1 = xp[right - 1], xp[right], fp[right - 1], fp[right]
    t = ((x - x0) / (x1 - x0).clamp_min(torch.finfo(x.dtype).tiny)).clamp(0, 1)
    return f0 + t * (f1 - f0)


def subsampled_quantile(values: torch.Tensor, q: float) -> torch.Tensor:
    flat = values.flatten()
    stride = max(1, math.ceil(flat.numel() / QUANTILE_SAMPLES))
    return torch.quantile(flat[::stride], q)


def box_mean(x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean over a size x size window around each pixel of (N, 1, H, W), edges replicated."""
    r = size // 2
    return window_sums(F.pad(x, (r, r, r, r), mode="replicate"), size) / size**2


def window_sums(x: torch.Tensor, size: int) -> torch.Tensor:
    """The sum of every ``size`` x ``size`` window of (..., H, W) ``x``: (..., H - size + 1, W - size + 1).

    Separable (row sums, then column sums): 2 * size additions per pixel instead of size**2, which
    matters for chroma smoothing's 17x17 windows and the patch distances of every search offset of
    the non-local steps. Shifted adds: measured 5x faster than two ``avg_pool2d`` passes on the CPU."""
    height, width = x.shape[-2:]
    rows = x[..., : width - size + 1].clone()
    for shift in range(1, size):
        rows += x[..., shift:width - size + 1 + shift]
    sums = rows[..., : height - size + 1, :].clone()
    for shift in range(1, size):
        sums += rows[..., shift:height - size + 1 + shift, :]
    return sums


def gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian of ``sigma`` pixels, out to 3 sigma."""
    r = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-r, r + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (taps / sigma).square())
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian low-pass of (N, 1, H, W), edges replicated."""
    kernel = gaussian_kernel(sigma, x.dtype, x.device)
    r = kernel.numel() // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))
