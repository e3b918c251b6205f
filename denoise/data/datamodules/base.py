"""What every datamodule is: the attributes the LightningModules and the CLI read, validated
settings, noise, the dataloaders, and the data position a checkpoint saves.

Train batches are ``{"noisy": (B, C, crop, crop)}``; validation, test and predict batches hold
one whole image: ``{"noisy": (1, C, H, W), "clean": ... (when there is a reference),
"name": [str], "index": (1, k) (evaluation sets)}``. ``in_channels`` is known after ``setup``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated

import lightning as L
from torch.utils.data import DataLoader, Dataset

from denoise.data.datamodules.data_position import DataPosition, PositionedDataset
from denoise.data.noise import NoNoise
from denoise.errors import ConfigError
from denoise.rules import SEED, checked, integer

log = logging.getLogger(__name__)


def is_synthetic(noise: Callable | None) -> bool:
    return noise is not None and not isinstance(noise, NoNoise)


class DenoisingDataModule(L.LightningDataModule):
    """What the LightningModules and the CLI read from any datamodule.

    ``in_channels``: the images' channel count (None until ``setup`` where only the files tell);
    ``num_workers``: loader processes; ``test_set``: the whole images that ``eval.py`` scores.
    """

    @checked("data.")
    def __init__(self, num_workers: Annotated[int, integer(0)]):
        super().__init__()
        self.num_workers = num_workers
        self.in_channels: int | None = None
        self.test_set: Dataset | None = None


class TrainingDataModule(DenoisingDataModule):
    """Base of the datamodules that train: the keys every one of them has, the training loader,
    and the data position (Lightning saves ``state_dict`` in checkpoints: an exact resume)."""

    @checked("data.")
    def __init__(
        self,
        noise: Callable | None,
        crop_size: Annotated[int, integer(1)],
        batch_size: Annotated[int, integer(1)],
        num_workers: int,
        epoch_length: Annotated[int, integer(1)],  # crops per epoch
        augment: bool,
        seed: Annotated[int, SEED] = 0,
    ):
        super().__init__(num_workers)
        self.noise = noise if noise is not None else NoNoise()
        self.crop_size, self.batch_size, self.epoch_length = crop_size, batch_size, epoch_length
        if self.epoch_length < self.batch_size:
            raise ConfigError(
                f"data.epoch_length={epoch_length} is smaller than data.batch_size={batch_size}: an epoch "
                f"would have no batch"
            )
        self.augment, self.seed = bool(augment), int(seed)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self._position: DataPosition | None = None
        self._positioned: PositionedDataset | None = None

    def share_batch(self, processes: int) -> None:
        """``batch_size`` is the global batch (``data.batch_size``): keep this process's share of it."""
        self.batch_size //= processes

    def require_real_noise(self, what: str) -> None:
        if is_synthetic(self.noise):
            raise ConfigError(
                f"{what} are already noisy, but noise={type(self.noise).__name__} would add synthetic noise; "
                f"use noise=none"
            )

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            self._tracked_train_set(), batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
            drop_last=True, persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return whole_image_loader(self.val_set)

    # --- the data position: what a checkpoint needs for an exact resume ---------------------------
    def _tracked_train_set(self) -> Dataset:
        """The training set, its fetches noted when they happen in this process (no workers)."""
        if self.num_workers > 0:
            return self.train_set
        if self._positioned is None or self._positioned.dataset is not self.train_set:
            self._positioned = PositionedDataset(self.train_set, self.position)
        return self._positioned

    @property
    def position(self) -> DataPosition:
        if self._position is None:
            self._position = DataPosition(self.batch_size)
        return self._position

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if self.trainer is not None and self.trainer.training:
            self.position.batch_trained()
        return batch

    def state_dict(self) -> dict:
        return self.position.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if self.trainer is not None and self.trainer.state.fn == "fit" and "rng_states" in state_dict:
            self.position.load_state_dict(state_dict, tracked=self.num_workers == 0)

    def test_dataloader(self) -> DataLoader:
        return whole_image_loader(self.test_set if self.test_set is not None else self.val_set)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()


TRAINING_KEYS = ("noise", "crop_size", "batch_size", "epoch_length", "augment", "seed")


class EvaluationDataModule(DenoisingDataModule):
    """Base of the datamodules that only evaluate (benchmark blocks): test and predict loaders.

    The training keys (``crop_size``, ``batch_size``, ...) are accepted and ignored, so that an
    experiment which sets them still composes with an evaluation data set; any other unknown key
    is a ConfigError.
    """

    def __init__(self, num_workers: int = 0, **training_keys):
        unknown = sorted(set(training_keys) - set(TRAINING_KEYS))
        if unknown:
            raise ConfigError(f"data.{unknown[0]} is not a setting of {type(self).__name__}")
        super().__init__(num_workers)

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
