"""data=hsi: cube formats and layouts, normalisation, splits, fixed validation noise, bad cubes."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tifffile
import torch

from denoise.data.datamodules.hsi import HSIDataModule
from denoise.data.formats.hsi_cube import normalize, probe_cube, read_cube
from denoise.data.noise import GaussianNoise, NoNoise, StripeNoise
from denoise.errors import ConfigError, DataError
from tests.data_fixtures import hsi_cube, write_mat_v73

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CUBE = hsi_cube(40, 48, 8)  # H x W x bands


def module(files, **settings):
    defaults = {"noise": GaussianNoise(30.0), "bands": 8, "crop_size": 16, "batch_size": 2, "epoch_length": 4, "num_workers": 0}
    return HSIDataModule(files=files, **(defaults | settings))


def as_chw(cube):
    return np.ascontiguousarray(cube.transpose(2, 0, 1))


@pytest.mark.parametrize("kind", ["v5_rad", "v73_rad", "npy_chw", "npy_hwc", "tif", "qrnn3d"])
def test_every_format_and_layout_gives_the_same_bands_first_cube(tmp_path, kind):
    path = {"v5_rad": "c.mat", "v73_rad": "c.mat", "npy_chw": "c.npy", "npy_hwc": "c.npy", "tif": "c.tif",
            "qrnn3d": "c.mat"}[kind]
    path = tmp_path / path
    if kind == "v5_rad":
        scipy.io.savemat(path, {"rad": CUBE})
    elif kind == "v73_rad":  # ICVL: MATLAB v7.3, h5py would show it bands first
        write_mat_v73(path, {"rad": CUBE})
    elif kind == "npy_chw":
        np.save(path, as_chw(CUBE))
    elif kind == "npy_hwc":
        np.save(path, CUBE)
    elif kind == "tif":
        tifffile.imwrite(path, as_chw(CUBE), photometric="minisblack", planarconfig="separate")
    else:
        scipy.io.savemat(path, {"gt": CUBE, "input": CUBE + 0.1, "sigma": np.array([[50.0]])})
    info = probe_cube(path)
    assert (info.bands, info.height, info.width) == (8, 40, 48)
    np.testing.assert_allclose(read_cube(info), as_chw(CUBE))


def test_unmixing_y_matrix_is_unfolded_with_nrow_ncol(tmp_path):
    y = as_chw(CUBE).transpose(0, 2, 1).reshape(8, -1)  # bands x pixels, column-major pixels
    scipy.io.savemat(tmp_path / "urban.mat", {"Y": y, "nRow": np.array([[40]]), "nCol": np.array([[48]]),
                                              "maxValue": np.array([[1000]])})
    np.testing.assert_allclose(read_cube(probe_cube(tmp_path / "urban.mat")), as_chw(CUBE))


def test_layout_override_and_ambiguous_npy(tmp_path):
    np.save(tmp_path / "square.npy", np.zeros((8, 8, 8), np.float32))
    with pytest.raises(DataError, match="cannot tell the band axis.*set data.layout=hwc or data.layout=chw"):
        probe_cube(tmp_path / "square.npy")
    assert probe_cube(tmp_path / "square.npy", axis_order="chw").axis_order == "chw"
    scipy.io.savemat(tmp_path / "c.mat", {"rad": CUBE})
    assert probe_cube(tmp_path / "c.mat", axis_order="chw").bands == 40  # told so: first axis = bands


def test_missing_key_lists_the_keys(tmp_path):
    scipy.io.savemat(tmp_path / "c.mat", {"radiance": CUBE, "wavelengths": np.arange(8.0)})
    with pytest.raises(DataError, match=r"c.mat: none of rad, gt, .* and more than one array to choose from \(it has radiance 40x48x8, wavelengths 1x8\); set data.key"):
        probe_cube(tmp_path / "c.mat")
    with pytest.raises(DataError, match=r"no variable 'rad' \(it has radiance"):
        probe_cube(tmp_path / "c.mat", key="rad")
    assert probe_cube(tmp_path / "c.mat", key="radiance").bands == 8


def test_normalisations():
    cube = as_chw(CUBE) * 3000 + 100
    out = normalize(cube, "minmax")
    assert out.min() == pytest.approx(0) and out.max() == pytest.approx(1)
    per_band = normalize(cube, "band_minmax")
    np.testing.assert_allclose(per_band.reshape(8, -1).min(1), 0, atol=1e-6)
    np.testing.assert_allclose(per_band.reshape(8, -1).max(1), 1, atol=1e-6)
    quantile = normalize(cube, "quantile", (0.02, 0.98)).reshape(8, -1)
    assert quantile.min() == 0 and quantile.max() == 1
    assert 0.015 < (quantile == 1).mean() < 0.03  # ~2% clipped at the top of every band
    np.testing.assert_allclose(normalize(cube, "scale", scale=5000.0), np.clip(cube / 5000, 0, 1))
    with pytest.raises(ConfigError, match="data.normalize=scale needs data.scale"):
        normalize(cube, "scale")


def test_training_crops_get_fresh_noise_and_validation_is_a_held_out_region(tmp_path):
    scipy.io.savemat(tmp_path / "c.mat", {"rad": CUBE * 1000})
    dm = module([str(tmp_path / "c.mat")], holdout=0.25)
    dm.setup("fit")
    assert dm.in_channels == 8
    batch = next(iter(dm.train_dataloader()))
    assert batch["noisy"].shape == (2, 8, 16, 16) and batch["noisy"].dtype == torch.float32
    train_cube = dm.train_set.images[0]
    assert train_cube.shape == (8, 40, 36)
    val = list(dm.val_dataloader())
    assert len(val) == 1 and val[0]["name"] == ["c_holdout"]
    assert val[0]["clean"].shape == val[0]["noisy"].shape == (1, 8, 40, 12)
    full = normalize(as_chw(CUBE * 1000), "minmax")
    np.testing.assert_allclose(val[0]["clean"][0].numpy(), full[:, :, 36:], atol=1e-6)
    np.testing.assert_allclose(train_cube, full[:, :, :36], atol=1e-6)
    residual = val[0]["noisy"] - val[0]["clean"]
    assert residual.std().item() == pytest.approx(30 / 255, rel=0.1)
    again = module([str(tmp_path / "c.mat")], holdout=0.25)
    again.setup("fit")
    assert torch.equal(next(iter(again.val_dataloader()))["noisy"], val[0]["noisy"])  # fixed per image


def test_split_by_file_lists_and_globs_with_centre_crop(tmp_path):
    for i in range(3):
        scipy.io.savemat(tmp_path / f"train{i}.mat", {"rad": hsi_cube(40, 48, 8, seed=i)})
    scipy.io.savemat(tmp_path / "test.mat", {"rad": hsi_cube(40, 48, 8, seed=9)})
    dm = module(str(tmp_path / "train*.mat"), val_files=[str(tmp_path / "test.mat")],
                test_files=str(tmp_path / "test.mat"), val_crop=32, noise=StripeNoise())
    dm.setup("fit")
    assert len(dm.train_set.images) == 3 and all(c.shape == (8, 40, 48) for c in dm.train_set.images)
    batch = next(iter(dm.test_dataloader()))
    assert batch["noisy"].shape == batch["clean"].shape == (1, 8, 32, 32) and batch["name"] == ["test"]


def test_qrnn3d_test_files_use_their_own_noisy_input(tmp_path):
    noisy = CUBE + np.random.default_rng(0).normal(0, 0.1, CUBE.shape).astype(np.float32)
    scipy.io.savemat(tmp_path / "t.mat", {"gt": CUBE, "input": noisy, "sigma": np.array([[50.0]])})
    dm = module([str(tmp_path / "t.mat")], val_files=[str(tmp_path / "t.mat")], noisy_key="input", normalize="none")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    np.testing.assert_allclose(batch["noisy"][0].numpy(), as_chw(noisy), atol=1e-6)
    np.testing.assert_allclose(batch["clean"][0].numpy(), as_chw(CUBE), atol=1e-6)


def test_real_noise_cube_is_evaluated_without_reference(tmp_path):
    np.save(tmp_path / "real.npy", as_chw(CUBE))
    dm = module([str(tmp_path / "real.npy")], noise=NoNoise(), holdout=0.0)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert "clean" not in batch and batch["noisy"].shape == (1, 8, 40, 48)


def test_band_count_must_match_data_bands_and_band_range_selects(tmp_path):
    scipy.io.savemat(tmp_path / "c.mat", {"rad": CUBE})
    with pytest.raises(DataError, match=r"c.mat: 8 bands but data.bands=31 .*model.net.in_channels.*set data.bands=8"):
        module([str(tmp_path / "c.mat")], bands=31).setup("fit")
    dm = module([str(tmp_path / "c.mat")], bands=3, band_range=[2, 5])
    dm.setup("fit")
    assert dm.in_channels == 3 and next(iter(dm.train_dataloader()))["noisy"].shape[1] == 3


def test_nan_cube_small_cube_and_missing_files(tmp_path):
    bad = CUBE.copy()
    bad[3, 4, 5] = np.nan
    scipy.io.savemat(tmp_path / "nan.mat", {"rad": bad})
    scipy.io.savemat(tmp_path / "good.mat", {"rad": CUBE})
    with pytest.raises(DataError, match=r"nan.mat \(rad\): 1 NaN or Inf values.*data.skip_bad=true"):
        module([str(tmp_path / "nan.mat")]).setup("fit")
    dm = module([str(tmp_path / "nan.mat"), str(tmp_path / "good.mat")], skip_bad=True)
    with pytest.warns(UserWarning, match="nan.mat"):
        dm.setup("fit")
    assert len(dm.train_set.images) == 1
    with pytest.raises(DataError, match=r"training part\): 40x38 is smaller than data.crop_size=40"):
        module([str(tmp_path / "good.mat")], crop_size=40).setup("fit")
    with pytest.raises(DataError, match="data.files: .*missing.mat does not exist"):
        module([str(tmp_path / "missing.mat")]).setup("fit")
    with pytest.raises(DataError, match=r"data.files: .*\*.tif matches no file"):
        module(str(tmp_path / "*.tif")).setup("fit")
    with pytest.raises(ConfigError, match="data.files is not set"):
        module(None)


def test_lazy_mode_reads_cubes_per_crop(tmp_path):
    scipy.io.savemat(tmp_path / "c.mat", {"rad": CUBE})
    dm = module([str(tmp_path / "c.mat")], lazy=True)
    dm.setup("fit")
    assert callable(dm.train_set.images[0])
    assert next(iter(dm.train_dataloader()))["noisy"].shape == (2, 8, 16, 16)


@pytest.mark.skipif(not (SHARED / "hsi" / "jasper_ridge.mat").is_file(), reason="shared data absent")
def test_real_jasper_ridge_cube():
    dm = module([str(SHARED / "hsi" / "jasper_ridge.mat")], bands=198, crop_size=64, normalize="scale", scale=5000.0)
    dm.setup("fit")
    assert dm.in_channels == 198
    assert next(iter(dm.train_dataloader()))["noisy"].shape == (2, 198, 64, 64)
    batch = next(iter(dm.val_dataloader()))
    assert batch["clean"].shape == (1, 198, 100, 20) and 0 <= float(batch["clean"].min())
    assert float(batch["clean"].max()) <= 1.0 and float(dm.train_set.images[0].max()) == 1.0  # 18 samples > 5000


def test_reference_cubes_validate_real_noise_cubes_with_the_noisy_cubes_normalisation(tmp_path):
    noisy = CUBE * 1000 + np.random.default_rng(1).normal(0, 20, CUBE.shape).astype(np.float32)
    (tmp_path / "refs").mkdir()
    np.save(tmp_path / "c.npy", as_chw(noisy))
    np.save(tmp_path / "refs" / "c.npy", as_chw(CUBE * 1000))
    dm = module([str(tmp_path / "c.npy")], noise=NoNoise(), normalize="band_minmax", holdout=0.25,
                reference_files=[str(tmp_path / "refs" / "c.npy")])
    dm.setup("fit")
    assert dm.train_set.images[0].shape == (8, 40, 48)  # references validate: no pixel held out
    batch = next(iter(dm.val_dataloader()))
    flat = as_chw(noisy).reshape(8, -1)
    low, span = flat.min(1)[:, None, None], (flat.max(1) - flat.min(1))[:, None, None]
    np.testing.assert_allclose(batch["noisy"][0].numpy(), (as_chw(noisy) - low) / span, atol=1e-5)
    np.testing.assert_allclose(batch["clean"][0].numpy(), (as_chw(CUBE * 1000) - low) / span, atol=1e-5)
    assert dm.state_dict()["cube_reading"]["normalize"] == "band_minmax"
    np.save(tmp_path / "refs" / "other.npy", as_chw(CUBE))
    with pytest.raises(DataError, match=r"data.reference_files: no reference named c.npy"):
        module([str(tmp_path / "c.npy")], noise=NoNoise(), reference_files=[str(tmp_path / "refs" / "other.npy")]).setup("fit")
    with pytest.raises(ConfigError, match="data.reference_files: clean references of real-noise cubes need noise=none"):
        module([str(tmp_path / "c.npy")], reference_files=[str(tmp_path / "refs" / "c.npy")])


def test_constant_bands_are_left_out_of_the_global_span(tmp_path):
    cube = as_chw(CUBE) * 1000 + 500
    cube[2] = 0.0  # a zeroed water-absorption band
    out = normalize(cube, "minmax")
    varying = np.delete(out, 2, axis=0)
    assert varying.min() == pytest.approx(0) and varying.max() == pytest.approx(1)
    assert np.isfinite(out).all()
