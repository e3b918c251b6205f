"""SSIM per channel in torch, computed as scikit-image's ``structural_similarity`` computes it.

scikit-image filters the five moment images (x, y, x^2, y^2, xy) with a uniform (7 x 7) or
Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 x 11), with reflection at the border,
then averages the SSIM map only where the window fits (the border of half a window is cut).
A valid convolution computes exactly those positions, so no border mode is needed here. With
``sample_covariance`` the (co)variances are scaled by n / (n - 1), n the window's pixel count
(scikit-image's default); K1 = 0.01, K2 = 0.03, data range 1. Everything runs in float64 on the
inputs' device, so one implementation serves validation on the accelerator and evaluation alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

UNIFORM_SIZE = 7
GAUSSIAN_SIZE, GAUSSIAN_SIGMA = 11, 1.5
_C1, _C2 = 0.01**2, 0.03**2


def window(size: int, gaussian: bool, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The (1, 1, size, size) averaging window: uniform, or Gaussian with sigma 1.5."""
    if gaussian:
        coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
        g = torch.exp(-(coords**2) / (2 * GAUSSIAN_SIGMA**2))
        g = g / g.sum()
        return torch.outer(g, g)[None, None]
    return torch.full((1, 1, size, size), 1.0 / size**2, dtype=dtype)


def channel_ssim(
    x: torch.Tensor, reference: torch.Tensor, gaussian: bool, sample_covariance: bool, size: int | None = None
) -> torch.Tensor:
    """SSIM of every channel of two (B, C, H, W) tensors in [0, 1], shape (B, C), in float64.

    ``size``: the window's side, by default 11 (Gaussian) or 7 (uniform); an image smaller than
    the window is refused, as scikit-image refuses it.
    """
    if x.shape != reference.shape or x.ndim != 4:
        raise ValueError(f"expected two (B, C, H, W) tensors of the same shape, got {tuple(x.shape)} and "
                         f"{tuple(reference.shape)}")
    x, reference = x.double(), reference.double()
    b, c, h, w = x.shape
    size = size or (GAUSSIAN_SIZE if gaussian else UNIFORM_SIZE)
    if size > min(h, w):
        raise ValueError(f"SSIM: the {size}x{size} window does not fit the {h}x{w} image")
    kernel = window(size, gaussian).to(x.device)
    stack = torch.cat([x, reference, x * x, reference * reference, x * reference]).reshape(5 * b * c, 1, h, w)
    mu_x, mu_y, xx, yy, xy = F.conv2d(stack, kernel).reshape(5, b, c, h - size + 1, w - size + 1)
    n = size * size
    norm = n / (n - 1) if sample_covariance and n > 1 else 1.0
    var_x, var_y, cov_xy = norm * (xx - mu_x**2), norm * (yy - mu_y**2), norm * (xy - mu_x * mu_y)
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov_xy + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return ssim_map.mean(dim=(2, 3))
