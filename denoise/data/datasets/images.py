"""Datasets shared by every datamodule: random training crops and whole images for evaluation.

Images are (C, H, W) tensors or numpy arrays, or callables that load one when asked (large data
sets are read lazily, one image at a time). Integer samples are scaled by their type's maximum
(uint8 / 255, uint16 / 65535) only after cropping, so a lazily read 12-megapixel photo costs its
8-bit size in memory, never a float copy of it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from denoise.data.checks import check_finite
from denoise.data.datasets.crops import random_crop, random_flip_rotate
from denoise.data.formats.image_files import read_raw
from denoise.errors import DataError

FIX_THE_FILE = "fix or replace the file"
ImageSource = torch.Tensor | np.ndarray | Callable[[], torch.Tensor | np.ndarray]


def as_float(image: torch.Tensor | np.ndarray) -> torch.Tensor:
    """float32 tensor; integer samples scaled to [0, 1] by their type's maximum."""
    if isinstance(image, np.ndarray):
        scale = float(np.iinfo(image.dtype).max) if image.dtype.kind in "ui" else 1.0
        tensor = torch.from_numpy(np.array(image, dtype=np.float32))
    else:
        scale = float(torch.iinfo(image.dtype).max) if not image.dtype.is_floating_point else 1.0
        tensor = image.float()
    return tensor / scale if scale != 1.0 else tensor


def materialise(source: ImageSource) -> torch.Tensor | np.ndarray:
    return source() if callable(source) else source


def fixed_noise(noise: Callable, image: torch.Tensor, seed: int, index: int) -> torch.Tensor:
    """One reproducible noise realisation per (seed, image index): validation numbers stay comparable."""
    return noise(image, torch.Generator().manual_seed(seed * 1_000_003 + index))


def _fixed_noisy(load: ImageSource, noise: Callable, seed: int, index: int) -> torch.Tensor:
    return fixed_noise(noise, as_float(materialise(load)), seed, index)


def lazy_fixed_noisy(load: ImageSource, noise: Callable, seed: int, index: int) -> Callable[[], torch.Tensor]:
    """A loader of the fixed noisy version of a clean image (picklable for worker processes)."""
    return partial(_fixed_noisy, load, noise, seed, index)


class NoisyCropDataset(Dataset):
    """``length`` random crops of noisy images: the only thing a blind-spot network trains on.

    ``images`` holds (C, H, W) tensors / arrays or callables that load one. With ``noise`` the
    images are clean and each crop gets fresh synthetic noise (the global RNG, seeded per worker).
    ``crops_per_image`` > 1 cuts that many crops from an image before loading another (fewer
    decodes of large lazily read images, at the price of less varied batches). With ``skip_bad``
    an image that fails to load is skipped with a warning instead of stopping training.
    """

    def __init__(
        self,
        images: Sequence[ImageSource],
        crop_size: int,
        length: int,
        augment: bool = False,
        names: Sequence[str] | None = None,
        noise: Callable | None = None,
        crops_per_image: int = 1,
        skip_bad: bool = False,
    ):
        if len(images) == 0:
            raise DataError("no training images")
        self.images, self.crop_size, self.length, self.augment = images, crop_size, length, augment
        self.names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        self.noise, self.crops_per_image, self.skip_bad = noise, max(1, int(crops_per_image)), skip_bad
        self._bad: set[int] = set()
        self._current: tuple[int, Any] | None = None
        self._uses_left = 0

    def __len__(self) -> int:
        return self.length

    def _next_image(self) -> tuple[int, torch.Tensor | np.ndarray]:
        if self._current is not None and self._uses_left > 0:
            self._uses_left -= 1
            return self._current
        while len(self._bad) < len(self.images):
            pick = int(torch.randint(0, len(self.images), ()))
            if pick in self._bad:
                continue
            try:
                image = materialise(self.images[pick])
            except DataError as error:
                if not self.skip_bad:
                    raise DataError(f"{error}; set data.skip_bad=true to skip bad files") from error
                warnings.warn(f"skipping a bad training image: {error}", stacklevel=2)
                self._bad.add(pick)
                continue
            if self.crops_per_image > 1:  # else hold no reference: one image in memory at a time
                self._current, self._uses_left = (pick, image), self.crops_per_image - 1
            return pick, image
        raise DataError("every training image failed to load (see the warnings above)")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pick, image = self._next_image()
        crop = as_float(random_crop(image, self.crop_size, name=self.names[pick]))
        if self.noise is not None:
            crop = self.noise(crop, None)
        if self.augment:
            crop = random_flip_rotate(crop)
        return {"noisy": crop.float().contiguous()}


class PairedImageDataset(Dataset):
    """Whole noisy images with their clean references (if any), for validation and evaluation.

    Items: ``noisy`` (C, H, W), ``clean`` (left out where there is no reference), ``name`` and,
    with ``indices``, ``index`` (a small integer tensor, e.g. (n, k) of a SIDD block).
    """

    def __init__(
        self,
        noisy: Sequence[ImageSource],
        clean: Sequence[ImageSource | None] | None = None,
        names: Sequence[str] | None = None,
        indices: Sequence[Sequence[int]] | None = None,
    ):
        self.noisy, self.clean = noisy, clean
        self.names = list(names) if names is not None else [str(i) for i in range(len(noisy))]
        self.indices = indices

    def __len__(self) -> int:
        return len(self.noisy)

    def __getitem__(self, index: int) -> dict:
        item = {"noisy": as_float(materialise(self.noisy[index])), "name": self.names[index]}
        check_finite(item["noisy"], f"noisy image {self.names[index]}", FIX_THE_FILE)
        if self.clean is not None and self.clean[index] is not None:
            item["clean"] = as_float(materialise(self.clean[index]))
            check_finite(item["clean"], f"clean image {self.names[index]}", FIX_THE_FILE)
        if self.indices is not None:
            item["index"] = torch.as_tensor(self.indices[index], dtype=torch.long)
        return item


class ImageFile:
    """A lazily read image file: calling it returns the (C, H, W) samples in the file's own dtype."""

    def __init__(self, path, info=None):
        self.path, self.info = path, info

    def __call__(self) -> np.ndarray:
        array = read_raw(self.path, self.info)[0]
        check_finite(array, str(self.path), FIX_THE_FILE)  # float TIFF / .npy: NaN must not reach a loss or a metric
        return array

    def __repr__(self) -> str:
        return f"ImageFile({str(self.path)!r})"
