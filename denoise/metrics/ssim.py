"""SSIM per channel in torch, computed as scikit-image's ``structural_similarity`` computes it.

scikit-image filters the five moment images (x, y, x^2, y^2, xy) with a uniform (7 x 7) or
Gaussian window (sigma 1.5, truncated at 3.5 sigma: 11 x 11), with reflection at the border,
then averages the SSIM map only where the window fits (the border of half a window is cut).
A valid filter computes exactly those positions, so no border mode is needed here. Both windows
are separable: a filter of shifted slices, rows then columns, is ~100x faster in float64 on a
CPU than ``conv2d`` (which has no fast float64 path there). With ``sample_covariance`` the
(co)variances are scaled by n / (n - 1), n the window's pixel count (scikit-image's default); K1 = 0.01, K2 = 0.03, data range 1. Everything runs in float64 on the
inputs' device, so one implementation serves validation on the accelerator and evaluation alike.
"""

from __future__ import annotations

import torch

UNIFORM_SIZE = 7
GAUSSIAN_SIZE, GAUSSIAN_SIGMA = 11, 1.5
_C1, _C2 = 0.01**2, 0.03**2


def window_taps(size: int, gaussian: bool) -> list[float]:
    """The 1-D taps of the separable window, in float64: uniform, or Gaussian with sigma 1.5."""
    if gaussian:
        coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
        g = torch.exp(-(coords**2) / (2 * GAUSSIAN_SIGMA**2))
        return (g / g.sum()).tolist()
    return [1.0 / size] * size


def valid_filter(maps: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """The window (``taps`` along rows, then columns) over (..., H, W) ``maps`` where it fits."""
    size = len(taps)
    height, width = maps.shape[-2:]
    rows = taps[0] * maps[..., : height - size + 1, :]
    for i in range(1, size):
        rows.add_(maps[..., i : height - size + 1 + i, :], alpha=taps[i])
    out = taps[0] * rows[..., : width - size + 1]
    for i in range(1, size):
        out.add_(rows[..., i : width - size + 1 + i], alpha=taps[i])
    return out


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
    h, w = x.shape[-2:]
    size = size or (GAUSSIAN_SIZE if gaussian else UNIFORM_SIZE)
    if size > min(h, w):
        raise ValueError(f"SSIM: the {size}x{size} window does not fit the {h}x{w} image")
    moments = torch.stack([x, reference, x * x, reference * reference, x * reference])
    mu_x, mu_y, xx, yy, xy = valid_filter(moments, window_taps(size, gaussian))
    n = size * size
    norm = n / (n - 1) if sample_covariance and n > 1 else 1.0
    var_x, var_y, cov_xy = norm * (xx - mu_x**2), norm * (yy - mu_y**2), norm * (xy - mu_x * mu_y)
    ssim_map = ((2 * mu_x * mu_y + _C1) * (2 * cov_xy + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (var_x + var_y + _C2))
    return ssim_map.mean(dim=(2, 3))
