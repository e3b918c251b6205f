"""The embedded demo: scikit-image's bundled photos with synthetic correlated noise.

Nothing is downloaded: the images ship inside scikit-image. Each clean image gets one fixed
noise realisation (seeded per image), so the model, like a real user, sees only one noisy
copy of each scene and never a clean pixel; the held-out images are validated against their
clean originals.

The photos are small and carry detail at the scale of single pixels, unlike the 12-megapixel
camera images that pixel-shuffle down-sampling is made for, where PD 2 loses little. With
``upscale: 2`` (the default) each photo is first enlarged 2x (bicubic), as if taken by a
sensor of twice the resolution, and the noise is added at that resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata

from denoise.data.datamodules.base import TrainingDataModule
from denoise.data.datasets.images import NoisyCropDataset, PairedImageDataset, fixed_noise
from denoise.errors import ConfigError
from denoise.rules import checked, integer

BUNDLED: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skdata.astronaut,
    "chelsea": skdata.chelsea,
    "coffee": skdata.coffee,
    "hubble_deep_field": skdata.hubble_deep_field,
    "immunohistochemistry": skdata.immunohistochemistry,
    "motorcycle": lambda: skdata.stereo_motorcycle()[0],
    "retina": skdata.retina,
    "rocket": skdata.rocket,
}


def load_bundled(name: str, upscale: int = 1) -> torch.Tensor:
    """A bundled RGB image as a float (3, H, W) tensor in [0, 1], optionally enlarged."""
    if name not in BUNDLED:
        raise ConfigError(f"data.images: unknown demo image {name!r}; choose from {', '.join(BUNDLED)}")
    if upscale < 1:
        raise ConfigError(f"data.upscale={upscale}: expected an integer >= 1")
    array = BUNDLED[name]()[..., :3]
    image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
    if upscale > 1:
        image = F.interpolate(image[None], scale_factor=upscale, mode="bicubic", align_corners=False)[0]
    return image.clamp(0, 1)


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    _, h, w = image.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[:, top : top + size, left : left + size]


class DemoDataModule(TrainingDataModule):
    """The bundled photos: fixed-noise training crops, held-out photos validated against their originals."""

    @checked("data.")
    def __init__(
        self,
        noise: Callable | None = None,
        train_images: Sequence[str] = ("astronaut", "coffee", "rocket", "immunohistochemistry"),
        val_images: Sequence[str] = ("chelsea", "motorcycle"),
        val_size: Annotated[int, integer(1)] = 256,  # centre crop of the validation photos
        crop_size: int = 64,  # a multiple of model.train_pd.factor (PD 2 -> 32x32 network inputs)
        batch_size: int = 8,
        epoch_length: int = 800,  # crops per epoch; training length is trainer.max_steps
        augment: bool = True,  # flips/rotations
        num_workers: int = 0,
        seed: int = 0,  # seeds the fixed noise of every photo
        # Enlarge the photos first, so that their detail per pixel is that of a camera image.
        upscale: Annotated[int, integer(1)] = 2,
    ):
        super().__init__(noise, crop_size, batch_size, num_workers, epoch_length, augment, seed)
        self.train_names, self.val_names = list(train_images), list(val_images)
        self.val_size, self.upscale = val_size, upscale
        self.in_channels = 3

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_clean = [load_bundled(name, self.upscale) for name in self.train_names]
        self.train_set = NoisyCropDataset(
            [fixed_noise(self.noise, img, self.seed, i) for i, img in enumerate(train_clean)],
            self.crop_size, self.epoch_length, self.augment, self.train_names,
        )
        offset = len(train_clean)
        val_clean = [centre_crop(load_bundled(name, self.upscale), self.val_size) for name in self.val_names]
        val_noisy = [fixed_noise(self.noise, img, self.seed, offset + i) for i, img in enumerate(val_clean)]
        self.val_set = PairedImageDataset(val_noisy, val_clean, self.val_names)
