"""DND: v7.3 info.mat bounding boxes and images_srgb/*.mat read through h5py, box by box."""

import h5py
import numpy as np
import pytest
import torch

from denoise.data.datamodules.dnd import DNDDataModule, read_boxes
from denoise.errors import ConfigError, DataError
from tests.data_fixtures import write_dnd


def test_boxes_are_read_and_cropped_as_the_dnd_devkit_does(tmp_path):
    images = write_dnd(tmp_path, images=2, boxes=3, size=(80, 96), box=32)
    dm = DNDDataModule(root=str(tmp_path))
    dm.setup("test")
    assert dm.in_channels == 3 and len(dm.test_set) == 6
    boxes = read_boxes(tmp_path / "info.mat")
    with h5py.File(tmp_path / "info.mat", "r") as f:  # the devkit's own indexing, 1-based inclusive
        info = f["info"]
        reference = np.array(info[info["boundingboxes"][0][1]]).T
    for index, batch in enumerate(dm.test_dataloader()):
        i, k = divmod(index, 3)
        assert batch["name"] == [f"{i + 1:04d}_{k + 1:02d}"] and batch["index"].tolist() == [[i, k]]
        assert "clean" not in batch and batch["noisy"].shape == (1, 3, 32, 32)
        r0, c0, r1, c1 = boxes[i][k]
        expected = torch.from_numpy(images[i][r0:r1, c0:c1]).permute(2, 0, 1)
        assert torch.equal(batch["noisy"][0], expected)
        if i == 1:
            row = reference[k]
            devkit = images[1][int(row[0] - 1) : int(row[2]), int(row[1] - 1) : int(row[3])]
            assert torch.equal(batch["noisy"][0], torch.from_numpy(devkit).permute(2, 0, 1))


def test_first_n_images_only(tmp_path):
    write_dnd(tmp_path, images=2, boxes=2)
    dm = DNDDataModule(root=str(tmp_path), images=1)
    dm.setup("test")
    assert len(dm.test_set) == 2


def test_missing_dnd_folder_names_layout_and_documentation(tmp_path):
    with pytest.raises(DataError, match=r"does not exist; expected <root>/info.mat.*noise.visinf.tu-darmstadt.de"):
        DNDDataModule(root=str(tmp_path / "dnd")).setup("test")
    with pytest.raises(ConfigError, match="data.root is not set"):
        DNDDataModule()


def test_missing_image_file_and_missing_key_are_named(tmp_path):
    write_dnd(tmp_path, images=2, boxes=1)
    (tmp_path / "images_srgb" / "0002.mat").unlink()
    with pytest.raises(DataError, match="0002.mat: missing"):
        DNDDataModule(root=str(tmp_path)).setup("test")
    write_dnd(tmp_path, images=1, boxes=1)
    with h5py.File(tmp_path / "images_srgb" / "0001.mat", "r+") as f:
        f.move("InoisySRGB", "Inoisy")
    dm = DNDDataModule(root=str(tmp_path), images=1)
    dm.setup("test")
    with pytest.raises(DataError, match=r"0001.mat: no variable 'InoisySRGB' \(it has Inoisy"):
        dm.test_set[0]
