"""data=demo: a training datamodule like the others, whose fixed noise is the one it always drew."""

import pytest
import torch

from denoise.data.datamodules.base import TrainingDataModule
from denoise.data.datamodules.demo import DemoDataModule, centre_crop, load_bundled
from denoise.data.noise import GaussianNoise
from denoise.errors import ConfigError

SMALL = {"train_images": ["coffee"], "val_images": ["chelsea"], "val_size": 32, "crop_size": 32,
         "batch_size": 2, "epoch_length": 4, "upscale": 1}


def test_demo_is_a_training_datamodule_and_checks_its_settings():
    assert issubclass(DemoDataModule, TrainingDataModule)
    with pytest.raises(ConfigError, match="data.batch_size=0: expected an integer >= 1"):
        DemoDataModule(batch_size=0)
    with pytest.raises(ConfigError, match="data.epoch_length=4 is smaller than data.batch_size=8"):
        DemoDataModule(epoch_length=4)


def test_demo_noise_with_seed_0_is_the_realisation_it_always_drew():
    noise = GaussianNoise(sigma=25)
    dm = DemoDataModule(noise=noise, **SMALL)
    dm.setup("fit")
    clean = centre_crop(load_bundled("chelsea"), 32)
    # Earlier versions seeded image i with seed * 1000 + i: for seed 0, generator i.
    assert torch.equal(dm.val_set[0]["noisy"], noise(clean, torch.Generator().manual_seed(1)))
    batch = next(iter(dm.train_dataloader()))
    assert batch["noisy"].shape == (2, 3, 32, 32)
