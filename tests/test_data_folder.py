"""data=folder: noisy folders, clean references, clean-only synthetic noise, and every mismatch."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from denoise.data.datamodules.folder import FolderDataModule
from denoise.data.noise import GaussianNoise, NoNoise
from denoise.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RNG = np.random.default_rng(0)


def write_pngs(folder, names, size=(48, 56), channels=3, bits=8):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        dtype = np.uint16 if bits == 16 else np.uint8
        array = RNG.integers(0, np.iinfo(dtype).max, (*size, channels) if channels > 1 else size).astype(dtype)
        Image.fromarray(array).save(folder / name)
    return folder


def module(**settings):
    defaults = {"noise": NoNoise(), "crop_size": 32, "batch_size": 2, "num_workers": 0, "epoch_length": 4, "augment": True}
    return FolderDataModule(**(defaults | settings))


def test_noisy_only_trains_on_all_images_and_predicts_them_without_reference(tmp_path):
    noisy = write_pngs(tmp_path / "noisy", ["a.png", "b.png", "c.png"])
    dm = module(noisy_dir=str(noisy))
    dm.setup("fit")
    assert dm.in_channels == 3 and len(dm.train_set.images) == 3
    batch = next(iter(dm.train_dataloader()))
    assert batch["noisy"].shape == (2, 3, 32, 32) and 0 <= batch["noisy"].min() and batch["noisy"].max() <= 1
    assert len(dm.val_dataloader()) == 0
    items = list(dm.predict_dataloader())
    assert [b["name"] for b in items] == [["a"], ["b"], ["c"]] and "clean" not in items[0]
    assert items[0]["noisy"].shape == (1, 3, 48, 56)


def test_clean_folder_gives_validation_pairs_out_of_the_training_split(tmp_path):
    names = [f"{i}.png" for i in range(10)]
    noisy, clean = write_pngs(tmp_path / "noisy", names), write_pngs(tmp_path / "clean", names)
    dm = module(noisy_dir=str(noisy), clean_dir=str(clean), val_fraction=0.2)
    dm.setup("fit")
    val_names = [b["name"][0] for b in dm.val_dataloader()]
    assert val_names == ["8", "9"] and len(dm.train_set.images) == 8
    batch = next(iter(dm.val_dataloader()))
    assert batch["noisy"].shape == batch["clean"].shape == (1, 3, 48, 56)
    dm = module(noisy_dir=str(noisy), clean_dir=str(clean), val_files=["3.png"], train_on_val=True)
    dm.setup("fit")
    assert [b["name"][0] for b in dm.val_dataloader()] == ["3"] and len(dm.train_set.images) == 10


def test_mixed_formats_match_by_name_16bit_png_tiff_and_npy(tmp_path):
    noisy, clean = tmp_path / "noisy", tmp_path / "clean"
    write_pngs(noisy, ["a.png"], channels=1, bits=16)
    tifffile.imwrite(noisy / "b.tif", RNG.integers(0, 65535, (48, 56), dtype=np.uint16))
    np.save(noisy / "c.npy", RNG.random((48, 56)).astype(np.float32))
    write_pngs(clean, ["a.png", "b.png", "c.png"], channels=1)
    dm = module(noisy_dir=str(noisy), clean_dir=str(clean), val_files=["a", "b", "c"], train_on_val=True)
    dm.setup("fit")
    assert dm.in_channels == 1
    for batch in dm.val_dataloader():
        assert batch["noisy"].shape == batch["clean"].shape == (1, 1, 48, 56)
        assert 0 <= batch["noisy"].min() and batch["noisy"].max() <= 1


def test_clean_only_folder_gets_fresh_training_noise_and_fixed_validation_noise(tmp_path):
    clean = write_pngs(tmp_path / "clean", [f"{i}.png" for i in range(4)])
    dm = module(clean_dir=str(clean), noise=GaussianNoise(25.0), val_fraction=0.25, seed=7)
    dm.setup("fit")
    first = [b["noisy"] for b in dm.val_dataloader()]
    again = [b["noisy"] for b in dm.val_dataloader()]
    assert torch.equal(first[0], again[0])
    other = module(clean_dir=str(clean), noise=GaussianNoise(25.0), val_fraction=0.25, seed=7)
    other.setup("fit")
    assert torch.equal(next(iter(other.val_dataloader()))["noisy"], first[0])
    residual = first[0] - next(iter(dm.val_dataloader()))["clean"]
    assert residual.std().item() == pytest.approx(25 / 255, rel=0.1)
    torch.manual_seed(0)
    a, b = dm.train_set[0]["noisy"], dm.train_set[0]["noisy"]
    assert not torch.equal(a, b)


def test_mismatched_names_in_either_direction(tmp_path):
    noisy = write_pngs(tmp_path / "noisy", ["a.png", "b.png"])
    clean = write_pngs(tmp_path / "clean", ["a.png", "c.png"])
    with pytest.raises(DataError, match=r"data.clean_dir=.*: no clean image for b of data.noisy_dir"):
        module(noisy_dir=str(noisy), clean_dir=str(clean)).setup("fit")
    (noisy / "b.png").unlink()
    with pytest.raises(DataError, match=r"data.noisy_dir=.*: no noisy image for c of data.clean_dir"):
        module(noisy_dir=str(noisy), clean_dir=str(clean)).setup("fit")


def test_mismatched_sizes_name_both_files(tmp_path):
    noisy = write_pngs(tmp_path / "noisy", ["a.png"])
    clean = write_pngs(tmp_path / "clean", ["a.png"], size=(48, 50))
    with pytest.raises(DataError, match=r"clean/a.png: clean image is 3x48x50 but the noisy a.png is 3x48x56"):
        module(noisy_dir=str(noisy), clean_dir=str(clean)).setup("fit")


def test_missing_or_empty_folders_and_bad_settings(tmp_path):
    with pytest.raises(DataError, match="data.noisy_dir=.*nope: no such folder; expected a folder of png/jpg"):
        module(noisy_dir=str(tmp_path / "nope")).setup("fit")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        module(noisy_dir=str(tmp_path / "empty")).setup("fit")
    with pytest.raises(ConfigError, match="data.noisy_dir is not set"):
        module()
    with pytest.raises(ConfigError, match="needs synthetic noise"):
        module(clean_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="use noise=none"):
        module(noisy_dir=str(tmp_path), noise=GaussianNoise(10.0))
    with pytest.raises(ConfigError, match="data.epoch_length=1 is smaller than data.batch_size=2"):
        module(noisy_dir=str(tmp_path), epoch_length=1)


def test_different_channel_counts_small_images_and_truncated_files(tmp_path):
    noisy = write_pngs(tmp_path / "noisy", ["a.png"])
    write_pngs(noisy, ["b.png"], channels=1)
    with pytest.raises(DataError, match=r"images differ in channel count \(b.png has 1, a.png has 3\)"):
        module(noisy_dir=str(noisy)).setup("fit")
    small = write_pngs(tmp_path / "small", ["a.png"])
    write_pngs(small, ["tiny.png"], size=(20, 60))
    with pytest.raises(DataError, match="tiny.png: 20x60 is smaller than data.crop_size=32"):
        module(noisy_dir=str(small)).setup("fit")
    with pytest.warns(UserWarning, match="tiny.png"):
        module(noisy_dir=str(small), skip_bad=True).setup("fit")
    broken = write_pngs(tmp_path / "broken", ["a.png", "b.png"])
    (broken / "b.png").write_bytes((broken / "b.png").read_bytes()[:300])
    with pytest.raises(DataError, match="b.png: truncated PNG"):
        module(noisy_dir=str(broken)).setup("fit")
    dm = module(noisy_dir=str(broken), skip_bad=True)
    with pytest.warns(UserWarning, match="b.png"):
        dm.setup("fit")
    assert len(dm.train_set.images) == 1


@pytest.mark.skipif(not (SHARED / "sidd_samples" / "noisy").is_dir(), reason="shared data absent")
def test_real_sidd_sample_pairs(tmp_path):
    dm = module(noisy_dir=str(SHARED / "sidd_samples" / "noisy"), clean_dir=str(SHARED / "sidd_samples" / "gt"),
                val_files=["06.png"], crop_size=200)
    dm.setup("fit")
    assert len(dm.train_set.images) == 11  # 11.png is 241x241: fits 200
    batch = next(iter(dm.val_dataloader()))
    mse = (batch["noisy"].double() - batch["clean"].double()).pow(2).mean()
    assert float(10 * torch.log10(1 / mse)) == pytest.approx(22.79, abs=0.01)


def test_evaluation_takes_images_smaller_than_the_training_crop(tmp_path):
    noisy = write_pngs(tmp_path / "noisy", ["a.png"], size=(20, 24))
    clean = write_pngs(tmp_path / "clean", ["a.png"], size=(20, 24))
    for stage in ("test", "predict"):
        dm = module(noisy_dir=str(noisy), clean_dir=str(clean), crop_size=32, train_on_val=True)
        dm.setup(stage)
        (batch,) = list(dm.test_dataloader())
        assert batch["noisy"].shape == batch["clean"].shape == (1, 3, 20, 24)
    with pytest.raises(DataError, match="a.png: 20x24 is smaller than data.crop_size=32"):
        dm.setup("fit")  # training still needs crops that fit
