"""Checks shared by every datamodule: channel count vs the network, crops and PD alignment."""

import pytest
import torch

from denoise.data import check_channels
from denoise.data.datasets.crops import check_crop_size, random_crop
from denoise.data.datasets.images import NoisyCropDataset
from denoise.errors import DataError
from denoise.ops.pd import pd_down


def test_check_channels_names_both_values_and_the_keys():
    check_channels(3, 3)
    with pytest.raises(DataError) as error:
        check_channels(198, 3)
    message = str(error.value)
    assert "198 channels" in message and "model.net.in_channels=3" in message and "data.bands" in message
    assert "\n" not in message


@pytest.mark.parametrize("factor", [1, 2, 4, 5])
def test_training_crops_split_evenly_into_pd_sub_images(factor):
    crop = 12 * factor
    check_crop_size(crop, factor)
    dataset = NoisyCropDataset([torch.rand(3, 61, 67)], crop, length=4)
    batch = torch.stack([dataset[i]["noisy"] for i in range(4)])
    assert batch.shape == (4, 3, crop, crop)
    subs = pd_down(batch, factor)
    assert subs.shape == (4 * factor * factor, 3, crop // factor, crop // factor)


def test_crops_of_integer_images_are_scaled_after_cropping():
    image = torch.full((3, 10, 10), 255, dtype=torch.uint8)
    crop = NoisyCropDataset([lambda: image.numpy()], 8, length=1)[0]["noisy"]
    assert crop.dtype == torch.float32 and torch.equal(crop, torch.ones(3, 8, 8))
    with pytest.raises(DataError, match="smaller than the crop size 12"):
        random_crop(image, 12)


def test_augmentation_keeps_the_crop_shape():
    dataset = NoisyCropDataset([torch.rand(2, 32, 40)], 16, length=8, augment=True)
    assert all(dataset[i]["noisy"].shape == (2, 16, 16) for i in range(8))
