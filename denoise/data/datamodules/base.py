"""What every datamodule shares: validated settings, noise, and the dataloaders of the contract.

Train batches are ``{"noisy": (B, C, crop, crop)}``; validation, test and predict batches hold
one whole image: ``{"noisy": (1, C, H, W), "clean": ... (when there is a reference),
"name": [str], "index": (1, k) (evaluation sets)}``. ``in_channels`` is known after ``setup``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import lightning as L
from torch.utils.data import DataLoader, Dataset

from denoise.data.noise import NoNoise
from denoise.errors import ConfigError

log = logging.getLogger(__name__)


def is_synthetic(noise: Callable | None) -> bool:
    return noise is not None and not isinstance(noise, NoNoise)


def positive_int(value, key: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"data.{key}={value!r}: expected an integer >= {minimum}")
    return value


class TrainingDataModule(L.LightningDataModule):
    """Base of the datamodules that train: the keys every one of them has."""

    def __init__(
        self,
        noise: Callable | None,
        crop_size: int,
        batch_size: int,
        num_workers: int,
        epoch_length: int,
        augment: bool,
        seed: int = 0,
    ):
        super().__init__()
        self.noise = noise if noise is not None else NoNoise()
        self.crop_size = positive_int(crop_size, "crop_size")
        self.batch_size = positive_int(batch_size, "batch_size")
        self.num_workers = positive_int(num_workers, "num_workers", minimum=0)
        self.epoch_length = positive_int(epoch_length, "epoch_length")
        if self.epoch_length < self.batch_size:
            raise ConfigError(
                f"data.epoch_length={epoch_length} is smaller than data.batch_size={batch_size}: an epoch "
                f"would have no batch"
            )
        self.augment, self.seed = bool(augment), int(seed)
        self.in_channels: int | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def require_real_noise(self, what: str) -> None:
        if is_synthetic(self.noise):
            raise ConfigError(
                f"{what} are already noisy, but noise={type(self.noise).__name__} would add synthetic noise; "
                f"use noise=none"
            )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self.train_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            drop_last=True, persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return whole_image_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return whole_image_loader(self.test_set if self.test_set is not None else self.val_set)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


TRAINING_KEYS = ("noise", "crop_size", "batch_size", "epoch_length", "augment", "seed")


class EvaluationDataModule(L.LightningDataModule):
    """Base of the datamodules that only evaluate (benchmark blocks): test and predict loaders.

    The training keys (``crop_size``, ``batch_size``, ...) are accepted and ignored, so that an
    experiment which sets them still composes with an evaluation data set; any other unknown key
    is a ConfigError.
    """

    def __init__(self, num_workers: int = 0, **training_keys):
        super().__init__()
        unknown = sorted(set(training_keys) - set(TRAINING_KEYS))
        if unknown:
            raise ConfigError(f"data.{unknown[0]} is not a setting of {type(self).__name__}")
        self.num_workers = positive_int(num_workers, "num_workers", minimum=0)
        self.in_channels: int | None = None
        self.test_set: Dataset | None = None

    def train_dataloader(self) -> DataLoader:
        raise ConfigError(
            f"{type(self).__name__} holds evaluation images only; train with data=sidd, data=folder or data=hsi"
        )

    def val_dataloader(self) -> DataLoader:
        return whole_image_loader(self.test_set, self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return whole_image_loader(self.test_set, self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return whole_image_loader(self.test_set, self.num_workers)


def whole_image_loader(dataset: Dataset | None, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset if dataset is not None else [], batch_size=1, shuffle=False, num_workers=num_workers)
