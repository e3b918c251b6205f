"""Random crops and augmentation shared by every datamodule."""

from __future__ import annotations

import torch

from denoise.errors import DataError


def random_crop(
    image: torch.Tensor, size: int, generator: torch.Generator | None = None, name: str = "image"
) -> torch.Tensor:
    """A random ``size`` x ``size`` crop of a (C, H, W) image."""
    _, h, w = image.shape
    if h < size or w < size:
        raise DataError(f"{name}: {h}x{w} is smaller than the crop size {size}; lower data.crop_size")
    top = int(torch.randint(0, h - size + 1, (), generator=generator))
    left = int(torch.randint(0, w - size + 1, (), generator=generator))
    return image[:, top : top + size, left : left + size]


def random_flip_rotate(image: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One of the 8 flips/rotations of the square, uniformly."""
    choice = int(torch.randint(0, 8, (), generator=generator))
    if choice >= 4:
        image = image.flip(-1)
    return torch.rot90(image, choice % 4, dims=(-2, -1))


def check_crop_size(crop_size: int, multiple: int) -> None:
    if crop_size <= 0 or crop_size % multiple:
        raise DataError(
            f"data.crop_size={crop_size} must be a positive multiple of the PD factor {multiple} "
            f"(model.train_pd.factor)"
        )
