"""Panels: images side by side, as people look at denoising (training's validation callback and eval.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def panel_image(*images: torch.Tensor) -> Image.Image:
    """Side-by-side 8-bit panel of (C, H, W) images in [0, 1] (first 3 channels, or grey)."""
    tiles = []
    for image in images:
        image = image.detach().float().clamp(0, 1)
        image = image[:3] if image.shape[0] >= 3 else image[:1].expand(3, -1, -1)
        tiles.append((image.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8))
    return Image.fromarray(np.concatenate(tiles, axis=1))


def save_evaluation_panel(
    path: Path, noisy: torch.Tensor, estimate: torch.Tensor, clean: torch.Tensor | None, denoised: torch.Tensor
) -> Path:
    """noisy | estimate | clean (if any) | residual (noisy - denoised, around grey 0.5) as a PNG at ``path``."""
    images = [noisy, estimate] + ([clean] if clean is not None else [])
    images.append((noisy - denoised + 0.5).clamp(0, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    panel_image(*images).save(path)
    return path
