"""Image quality metrics and the sRGB protocol they are computed under.

sRGB protocol (SIDD, DND, the demo): outputs are rounded to 8-bit levels
(``floor(x * 255 + 0.5) / 255``) and clipped to [0, 1]; PSNR is computed per image with data
range 1 and averaged over images (never the PSNR of a pooled MSE). SSIM here is the Gaussian
variant (11x11 window, sigma 1.5) averaged over channels, as torchmetrics computes it.
"""

from __future__ import annotations

import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

SRGB_PROTOCOL = "8-bit rounding and clipping; per-image PSNR (data range 1) averaged over images; Gaussian SSIM"


def quantize_8bit(x: torch.Tensor) -> torch.Tensor:
    """Round [0, 1] values to the nearest 8-bit level and clip."""
    return torch.floor(x.clamp(0, 1) * 255.0 + 0.5) / 255.0


def per_image_psnr() -> PeakSignalNoiseRatio:
    return PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")


def gaussian_ssim() -> StructuralSimilarityIndexMeasure:
    return StructuralSimilarityIndexMeasure(data_range=1.0, gaussian_kernel=True, sigma=1.5, kernel_size=11)


def psnr(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (data range 1) of (B, C, H, W) tensors, shape (B,)."""
    mse = (x.double() - reference.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)
