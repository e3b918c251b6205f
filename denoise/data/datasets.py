"""Datasets over images already in memory or read lazily by a callable."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from denoise.data.crops import random_crop, random_flip_rotate


class NoisyCropDataset(Dataset):
    """``length`` random crops of noisy images: the only thing a blind-spot network trains on.

    ``images`` holds (C, H, W) tensors or callables that load one (so large data sets are
    read lazily, one image at a time).
    """

    def __init__(
        self,
        images: Sequence[torch.Tensor | Callable[[], torch.Tensor]],
        crop_size: int,
        length: int,
        augment: bool = False,
        names: Sequence[str] | None = None,
    ):
        self.images, self.crop_size, self.length, self.augment = images, crop_size, length, augment
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pick = int(torch.randint(0, len(self.images), ()))
        image = self.images[pick]
        image = image() if callable(image) else image
        crop = random_crop(image, self.crop_size, name=self.names[pick])
        if self.augment:
            crop = random_flip_rotate(crop)
        return {"noisy": crop.contiguous()}


class PairedImageDataset(Dataset):
    """Whole noisy images with their clean references, for validation and evaluation."""

    def __init__(self, noisy: Sequence[torch.Tensor], clean: Sequence[torch.Tensor], names: Sequence[str]):
        self.noisy, self.clean, self.names = noisy, clean, list(names)

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, index: int) -> dict:
        return {"noisy": self.noisy[index], "clean": self.clean[index], "name": self.names[index]}
