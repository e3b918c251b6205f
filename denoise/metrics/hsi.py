"""Hyperspectral image quality metrics and the protocol they are computed under.

HSI protocol (QRNN3D, Wei, Fu and Huang, IEEE TNNLS 2021, and its successors). Inputs are (B, C, H, W)
tensors, C = bands, values on the [0, 1] scale of the normalised cube (peak 1); every function
returns one value per image, shape (B,), computed in float64; average over images yourself.

- MPSNR: the mean over bands of the per-band PSNR, ``10 log10(1 / MSE_b)`` (peak 1). An exact
  band (MSE 0) is counted as ``10 log10(1 / 1e-12)`` = 120 dB instead of infinity.
- MSSIM: the mean over bands of the per-band SSIM with data_range 1, as scikit-image's
  ``structural_similarity`` computes it by default (7 x 7 uniform window, K1 = 0.01, K2 = 0.03,
  sample covariance, averaged over the positions where the window fits, i.e. without the
  3-pixel border); ``gaussian=True`` gives the Gaussian variant (11 x 11, sigma 1.5, population
  covariance). On images smaller than the window, the window shrinks to the largest odd size
  that fits.
- SAM: the mean over pixels of the angle between the estimated and the reference spectrum,
  ``arccos(<x, y> / (|x| |y|))``, in radians (:func:`sam_radians`) or degrees
  (:func:`sam_degrees`). Where either spectrum is (numerically) zero, ``|x| |y| < eps``, there is
  no direction to compare: the angle counts as 0.
- ERGAS: ``100 * sqrt(mean_b(MSE_b / mu_b^2))`` with ``mu_b`` the mean of reference band b
  (resolution ratio 1: denoising); ``mu_b^2`` is floored at ``eps``.
"""

from __future__ import annotations

import math

import torch

from denoise.metrics.ssim import GAUSSIAN_SIZE, UNIFORM_SIZE, channel_ssim

HSI_PROTOCOL = (
    "MPSNR: mean per-band PSNR (peak 1); MSSIM: mean per-band SSIM (data_range 1, 7x7 uniform window as "
    "skimage); SAM: mean spectral angle over pixels (radians); ERGAS: 100*sqrt(mean_b(MSE_b/mean_b^2))"
)
HSI_METRICS = ("mpsnr", "mssim", "sam_rad", "sam_deg", "ergas")
_MSE_FLOOR = 1e-12


def _pair(x: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != reference.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and "
                         f"{tuple(reference.shape)}")
    return x.double(), reference.double()


def band_psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-band PSNR (peak 1), shape (B, C)."""
    x, reference = _pair(x, reference)
    mse = (x - reference).pow(2).mean(dim=(2, 3))
    return 10 * torch.log10(1.0 / mse.clamp(min=_MSE_FLOOR))


def mpsnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Mean over bands of the per-band PSNR (peak 1), shape (B,)."""
    return band_psnr(x, reference).mean(dim=1)


def band_ssim(x: torch.Tensor, reference: torch.Tensor, gaussian: bool = False) -> torch.Tensor:
    """Per-band SSIM (data_range 1), shape (B, C); see the module docstring for the variant."""
    x, reference = _pair(x, reference)
    h, w = x.shape[-2:]
    size = min(GAUSSIAN_SIZE if gaussian else UNIFORM_SIZE, h - (1 - h % 2), w - (1 - w % 2))
    return channel_ssim(x, reference, gaussian, sample_covariance=not gaussian, size=size)


def mssim(x: torch.Tensor, reference: torch.Tensor, gaussian: bool = False) -> torch.Tensor:
    """Mean over bands of the per-band SSIM (data_range 1), shape (B,)."""
    return band_ssim(x, reference, gaussian).mean(dim=1)


def sam_radians(x: torch.Tensor, reference: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean spectral angle over pixels in radians, shape (B,); 0 where a spectrum is zero."""
    x, reference = _pair(x, reference)
    dot = (x * reference).sum(dim=1)
    norms = x.norm(dim=1) * reference.norm(dim=1)
    cosine = torch.where(norms > eps, dot / norms.clamp(min=eps), torch.ones_like(dot))
    return torch.arccos(cosine.clamp(-1.0, 1.0)).mean(dim=(1, 2))


def sam_degrees(x: torch.Tensor, reference: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """:func:`sam_radians` in degrees."""
    return sam_radians(x, reference, eps) * (180.0 / math.pi)


def ergas(x: torch.Tensor, reference: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """ERGAS = 100 * sqrt(mean over bands of MSE_b / mean_b^2), shape (B,); lower is better."""
    x, reference = _pair(x, reference)
    mse = (x - reference).pow(2).mean(dim=(2, 3))
    mean_sq = reference.mean(dim=(2, 3)).pow(2).clamp(min=eps)
    return 100.0 * torch.sqrt((mse / mean_sq).mean(dim=1))


def hsi_metrics(estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, torch.Tensor]:
    """:data:`HSI_METRICS` of every (B, C, H, W) image against its reference, each shape (B,)
    (``estimate`` clipped to [0, 1])."""
    x = estimate.clamp(0, 1)
    return {
        "mpsnr": mpsnr(x, reference),
        "mssim": mssim(x, reference),
        "sam_rad": sam_radians(x, reference),
        "sam_deg": sam_degrees(x, reference),
        "ergas": ergas(x, reference),
    }


def hsi_image_metrics(estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """:data:`HSI_METRICS` of one (C, H, W) image against its reference (``estimate`` clipped to [0, 1])."""
    return {name: value.item() for name, value in hsi_metrics(estimate[None], reference[None]).items()}
