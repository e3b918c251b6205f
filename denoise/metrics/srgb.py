"""Image quality metrics and the sRGB protocol they are computed under.

sRGB protocol (SIDD, DND, the demo): outputs are rounded to 8-bit levels
(``floor(x * 255 + 0.5) / 255``) and clipped to [0, 1]; PSNR is computed per image with data
range 1 and averaged over images (never the PSNR of a pooled MSE).

SSIM is not one number across papers, so evaluation reports both common variants by name, each
exactly scikit-image's ``structural_similarity`` on the (H, W, C) float64 arrays in [0, 1] with
``data_range=1`` and ``channel_axis=-1`` (the mean over channels):

- ``ssim_gaussian``: ``gaussian_weights=True, sigma=1.5`` (an 11 x 11 window; sample
  covariance, scikit-image's default), TBSN's and SpatiallyAdaptiveSSID's call (~0.93-0.95 on SIDD);
- ``ssim_uniform``: scikit-image's defaults, a 7 x 7 uniform window, the call of AP-BSN and its
  descendants (~0.87-0.89 on SIDD).

On uint8 data with ``data_range=255`` both give the same values (up to float rounding).
:func:`srgb_metrics` computes all three in torch (float64, :mod:`denoise.metrics.ssim`), for a
batch on any device: validation and evaluation both score with it, so ``val/psnr`` and
``results.json`` agree on the same images. ``psnr_hwc`` and ``ssim_hwc`` are the scikit-image
computation itself, on numpy arrays: the reference the torch one is tested against.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity

from denoise.metrics.ssim import channel_ssim

SRGB_PROTOCOL = (
    "8-bit rounding (floor(x*255+0.5)) and clipping; per-image PSNR (data range 1) averaged over images; "
    "SSIM as skimage.metrics.structural_similarity(data_range=1, channel_axis=-1) averaged over images, "
    "in two "
    "variants: ssim_gaussian (gaussian_weights=True, sigma=1.5: 11x11, TBSN) and ssim_uniform (7x7 uniform "
    "window, skimage default: AP-BSN)"
)
SSIM_VARIANTS: dict[str, dict] = {
    "ssim_gaussian": {"gaussian_weights": True, "sigma": 1.5},
    "ssim_uniform": {},
}
SRGB_METRICS = ("psnr", *SSIM_VARIANTS)
_MSE_FLOOR = 1e-12  # an exact image scores 120 dB instead of infinity


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the nearest 8-bit level and clip."""
    return torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0


def psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR (data range 1) of every (B, C, H, W) image, shape (B,), in float64; 120 dB for identical images."""
    mse = (x.double() - reference.double()).pow(2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1.0 / mse.clamp(min=_MSE_FLOOR))


def ssim(x: torch.Tensor, reference: torch.Tensor, variant: str) -> torch.Tensor:
    """SSIM in the named variant of every (B, C, H, W) image (mean over channels), shape (B,), in float64."""
    if variant not in SSIM_VARIANTS:
        raise ValueError(f"unknown SSIM variant {variant!r}; choose from {', '.join(SSIM_VARIANTS)}")
    gaussian = SSIM_VARIANTS[variant].get("gaussian_weights", False)
    return channel_ssim(x, reference, gaussian, sample_covariance=True).mean(dim=1)


def srgb_metrics(estimate: torch.Tensor, reference: torch.Tensor, quantize: bool = True) -> dict[str, torch.Tensor]:
    """:data:`SRGB_METRICS` of every (B, C, H, W) image against its reference, each shape (B,).

    ``estimate`` is rounded to 8-bit levels in float64 (exactly k / 255) and clipped first
    (``quantize=False``: used as it is); ``reference`` is used as it is.
    """
    x = quantize_8bit(estimate.double()) if quantize else estimate.double()
    if x.shape != reference.shape:
        raise ValueError(f"estimate {tuple(x.shape)} and reference {tuple(reference.shape)} differ in shape")
    return {"psnr": psnr(x, reference), **{name: ssim(x, reference, name) for name in SSIM_VARIANTS}}


def to_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (C, H, W) or (1, C, H, W) tensor as a float64 (H, W, C) numpy array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().double().numpy()
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_hwc: expected one image, got a batch of {image.shape[0]}")
        image = image[0]
    return np.ascontiguousarray(image.transpose(1, 2, 0))


def psnr_hwc(x: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (data range 1) of two float arrays in [0, 1]; 120 dB for identical images."""
    mse = float(np.mean((np.asarray(x, np.float64) - np.asarray(reference, np.float64)) ** 2))
    return float(10 * np.log10(1.0 / max(mse, _MSE_FLOOR)))


def ssim_hwc(x: np.ndarray, reference: np.ndarray, variant: str) -> float:
    """scikit-image SSIM of (H, W, C) arrays in [0, 1] in the named variant (see the module docstring)."""
    if variant not in SSIM_VARIANTS:
        raise ValueError(f"unknown SSIM variant {variant!r}; choose from {', '.join(SSIM_VARIANTS)}")
    return float(
        structural_similarity(x, reference, channel_axis=-1, data_range=1.0, **SSIM_VARIANTS[variant])
    )


def srgb_image_metrics(
    estimate: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray, quantize: bool = True
) -> dict[str, float]:
    """``psnr``, ``ssim_gaussian``, ``ssim_uniform`` of one (C, H, W) or (1, C, H, W) image against
    its reference, by :func:`srgb_metrics`."""
    x, y = (_one_image(image) for image in (estimate, reference))
    return {name: value.item() for name, value in srgb_metrics(x, y, quantize).items()}


def _one_image(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    image = torch.as_tensor(image)
    if image.ndim == 4 and image.shape[0] != 1:
        raise ValueError(f"expected one image, got a batch of {image.shape[0]}")
    return image.reshape(1, *image.shape[-3:])
