"""Callbacks: people look at denoising, they do not only read it."""

from __future__ import annotations

from pathlib import Path

import lightning as L
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


class ValidationPanels(L.Callback):
    """After each validation, write noisy | denoised | clean of the first image to ``dirpath``."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.latest: Path | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        panel = getattr(pl_module, "panel", None)
        if panel is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        image = panel_image(*panel)
        self.latest = self.dirpath / "latest.png"
        image.save(self.dirpath / f"step_{trainer.global_step:07d}.png")
        image.save(self.latest)
