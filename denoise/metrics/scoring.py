"""The scoring protocols by name: what is scored, with which metrics, against what baseline.

``srgb``: the estimate is rounded to 8-bit levels (:mod:`denoise.metrics.srgb`); ``hsi``: it is
clipped to [0, 1] (:mod:`denoise.metrics.hsi`). Every image is scored twice, the denoised estimate
and the noisy input (the baseline, keys prefixed ``noisy_``), against its clean reference.
Validation (``DenoisingModule``) and ``eval.py`` both score through :func:`batch_scores`, so the
same images give the same numbers in ``val/*`` and in ``results.json``.
"""

from __future__ import annotations

import numpy as np
import torch

from denoise.metrics.hsi import HSI_METRICS, HSI_PROTOCOL, hsi_metrics
from denoise.metrics.srgb import SRGB_METRICS, SRGB_PROTOCOL, quantize_8bit, srgb_metrics

SCORING_PROTOCOLS = {"srgb": SRGB_PROTOCOL, "hsi": HSI_PROTOCOL + "; SAM also in degrees (sam_deg)"}
METRICS = {"srgb": SRGB_METRICS, "hsi": HSI_METRICS}
LABELS = {
    "psnr": "PSNR (dB)",
    "ssim_gaussian": "SSIM (Gaussian 11x11, sigma 1.5)",
    "ssim_uniform": "SSIM (uniform 7x7)",
    "mpsnr": "MPSNR (dB)",
    "mssim": "MSSIM",
    "sam_rad": "SAM (rad)",
    "sam_deg": "SAM (deg)",
    "ergas": "ERGAS",
}


def scored_estimate(protocol: str, denoised: torch.Tensor) -> torch.Tensor:
    """The values the protocol scores (and eval.py saves): 8-bit levels (srgb), or clipped (hsi)."""
    return quantize_8bit(denoised) if protocol == "srgb" else denoised.clamp(0, 1)


def batch_scores(protocol: str, estimate: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
    """The protocol's metrics of every (B, C, H, W) image of ``estimate`` (the denoised or the noisy
    images: the protocol rounds or clips them itself) against ``clean``, each shape (B,), float64."""
    clean = clean.float()
    if protocol == "srgb":
        return srgb_metrics(estimate, clean)
    return hsi_metrics(estimate, clean)


def image_scores(protocol: str, estimate: torch.Tensor, noisy: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """The metrics of one (C, H, W) ``estimate`` and, as ``noisy_<metric>``, of the noisy input,
    against ``clean``."""
    scores = batch_scores(protocol, estimate[None], clean[None])
    baseline = batch_scores(protocol, noisy[None], clean[None])
    return {key: value.item() for key, value in scores.items()} | {
        f"noisy_{key}": value.item() for key, value in baseline.items()
    }


def mean_scores(protocol: str, rows: list[dict]) -> dict:
    """``metrics`` and ``baseline``: the means over the rows that were scored (None when no image
    had a reference), and ``scored_images``, how many were."""
    keys = METRICS[protocol]
    scored = [row for row in rows if keys[0] in row]
    if not scored:
        return {"scored_images": 0, "metrics": None, "baseline": None}
    return {
        "scored_images": len(scored),
        "metrics": {key: float(np.mean([row[key] for row in scored])) for key in keys},
        "baseline": {key: float(np.mean([row[f"noisy_{key}"] for row in scored])) for key in keys},
    }
