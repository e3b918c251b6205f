"""SIDD: Medium tree, validation / benchmark blocks, patch cache, and the errors on bad input."""

import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from denoise.data.datamodules.sidd import SIDDDataModule, find_data_dir, medium_images
from denoise.data.datamodules.sidd_blocks import SIDDBenchmarkDataModule, SIDDValidationDataModule
from denoise.data.datasets.crops import check_crop_size
from denoise.data.datasets.sidd_patches import cut_patches, default_patch_dir, patch_starts
from denoise.data.noise import GaussianNoise, NoNoise
from denoise.errors import ConfigError, DataError
from tests.data_fixtures import (
    sidd_blocks,
    write_mat_v73,
    write_sidd_benchmark,
    write_sidd_medium,
    write_sidd_validation,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
prepare_sidd = runpy.run_path(str(REPO / "scripts" / "prepare_sidd.py"))["main"]


@pytest.fixture
def sidd_root(tmp_path):
    root = tmp_path / "SIDD"
    write_sidd_medium(root, scenes=2, size=(96, 128))
    write_sidd_validation(root / "SIDD_Validation", n=2, k=3, size=32)
    return root


def module(root, **overrides):
    settings = {"root": str(root), "noise": NoNoise(), "crop_size": 40, "batch_size": 2, "num_workers": 0, "epoch_length": 6}
    return SIDDDataModule(**(settings | overrides))


def test_train_batches_are_noisy_crops_in_unit_range(sidd_root):
    dm = module(sidd_root)
    dm.setup("fit")
    assert dm.in_channels == 3
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    for batch in batches:
        assert set(batch) == {"noisy"}
        assert batch["noisy"].shape == (2, 3, 40, 40) and batch["noisy"].dtype == torch.float32
        assert 0.0 <= batch["noisy"].min() and batch["noisy"].max() <= 1.0


def test_only_noisy_images_are_trained_on(sidd_root):
    data_dir = find_data_dir(sidd_root)
    pairs = medium_images(data_dir)
    assert len(pairs) == 4 and all("_NOISY_SRGB_" in n.name and "_GT_SRGB_" in g.name for n, g in pairs)
    dm = module(sidd_root)
    dm.setup("fit")
    assert all("NOISY" in name for name in dm.train_set.names)


@pytest.mark.parametrize("inner", ["", "SIDD_Medium_Srgb", "SIDD_Medium_Srgb/Data"])
def test_root_may_point_at_the_sidd_folder_medium_folder_or_data(sidd_root, inner):
    dm = module(sidd_root / inner if inner else sidd_root, val_blocks=2)
    dm.setup("fit")
    assert len(dm.train_set.images) == 4 and len(dm.val_set) == 2


def test_validation_blocks_with_index_and_first_n(sidd_root):
    dm = module(sidd_root, val_blocks=4)
    dm.setup("fit")
    batches = list(dm.val_dataloader())
    assert len(batches) == 4
    _noisy, clean = sidd_blocks(2, 3, 32)
    for i, batch in enumerate(batches):
        n, k = divmod(i, 3)
        assert batch["noisy"].shape == batch["clean"].shape == (1, 3, 32, 32)
        assert batch["index"].tolist() == [[n, k]] and batch["name"] == [f"{n:02d}_{k:02d}"]
        expected = torch.from_numpy(clean[n, k]).permute(2, 0, 1)[None].float() / 255
        assert torch.equal(batch["clean"], expected)


def test_crop_size_must_be_a_multiple_of_the_pd_factor():
    check_crop_size(640, 5)
    with pytest.raises(DataError, match="data.crop_size=642 must be a positive multiple of the PD factor 5"):
        check_crop_size(642, 5)


def test_missing_root_names_the_layout_and_the_documentation(tmp_path):
    dm = module(tmp_path / "nowhere")
    with pytest.raises(DataError) as error:
        dm.setup("fit")
    message = str(error.value)
    assert "nowhere does not exist" in message and "SIDD_Medium_Srgb/Data/<NNNN>_<scene>" in message
    assert "https://abdokamel.github.io/sidd/" in message and "\n" not in message


def test_root_without_sidd_images_names_the_layout(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no SIDD Medium sRGB images; expected"):
        module(tmp_path / "empty").setup("fit")


def test_unset_root_and_synthetic_noise_are_config_errors(sidd_root):
    with pytest.raises(ConfigError, match="data.root is not set"):
        SIDDDataModule(noise=NoNoise())
    with pytest.raises(ConfigError, match="use noise=none"):
        module(sidd_root, noise=GaussianNoise(25))


def test_missing_validation_blocks_say_where_and_how_to_skip(tmp_path):
    root = tmp_path / "SIDD"
    write_sidd_medium(root, scenes=1)
    with pytest.raises(DataError, match="ValidationNoisyBlocksSrgb.mat.*data.val_blocks=0"):
        module(root).setup("fit")
    dm = module(root, val_blocks=0)
    dm.setup("fit")
    assert len(dm.val_dataloader()) == 0


def test_crop_larger_than_the_images_is_reported_before_training(sidd_root):
    with pytest.raises(DataError, match=r"96x128 is smaller than data.crop_size=100"):
        module(sidd_root, crop_size=100).setup("fit")


def test_truncated_image_stops_setup_or_is_skipped_with_skip_bad(sidd_root):
    bad = medium_images(find_data_dir(sidd_root))[0][0]
    bad.write_bytes(bad.read_bytes()[:500])
    with pytest.raises(DataError, match=f"{bad.name}: truncated PNG.*data.skip_bad=true"):
        module(sidd_root).setup("fit")
    dm = module(sidd_root, skip_bad=True)
    with pytest.warns(UserWarning, match=bad.name):
        dm.setup("fit")
    assert len(dm.train_set.images) == 3


def test_image_corrupted_inside_is_named_at_loading_or_skipped(sidd_root):
    bad = medium_images(find_data_dir(sidd_root))[0][0]
    data = bytearray(bad.read_bytes())
    data[200:2000] = b"\x00" * 1800
    bad.write_bytes(bytes(data))
    dm = module(sidd_root, val_blocks=0)
    dm.setup("fit")
    dm.train_set.images = dm.train_set.images[:1]
    with pytest.raises(DataError, match=bad.name):
        dm.train_set[0]
    dm = module(sidd_root, val_blocks=0, skip_bad=True, epoch_length=20)
    dm.setup("fit")
    with pytest.warns(UserWarning, match=bad.name):
        crops = [dm.train_set[i]["noisy"] for i in range(20)]
    assert all(c.shape == (3, 40, 40) for c in crops)


# ------------------------------------------------------------------ validation / benchmark sets


def test_sidd_val_accepts_both_keys_in_one_file_any_grid_and_v73(tmp_path):
    noisy, clean = sidd_blocks(1, 5, 16)
    scipy.io.savemat(tmp_path / "blocks.mat", {"ValidationNoisyBlocksSrgb": noisy, "ValidationGtBlocksSrgb": clean})
    dm = SIDDValidationDataModule(root=str(tmp_path), blocks=3)
    dm.setup("test")
    assert len(dm.test_set) == 3 and dm.in_channels == 3
    v73 = tmp_path / "v73"
    write_mat_v73(v73 / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    write_mat_v73(v73 / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": clean})
    dm = SIDDValidationDataModule(root=str(v73))
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert torch.equal(batch["noisy"][0], torch.from_numpy(noisy[0, 0]).permute(2, 0, 1).float() / 255)


def test_blocks_of_the_wrong_shape_or_type_are_rejected(tmp_path):
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": np.zeros((4, 32, 32, 3))})
    scipy.io.savemat(tmp_path / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": np.zeros((4, 32, 32, 3))})
    with pytest.raises(DataError, match=r"expected uint8 blocks \(N, K, H, W, 3\)"):
        SIDDValidationDataModule(root=str(tmp_path)).setup("test")


def test_validation_file_without_its_key_lists_the_keys(tmp_path):
    scipy.io.savemat(tmp_path / "ValidationNoisyBlocksSrgb.mat", {"blocks": sidd_blocks(1, 1, 8)[0]})
    with pytest.raises(DataError, match=r"'ValidationNoisyBlocksSrgb' is missing \(it has blocks 1x1x8x8x3\)"):
        SIDDValidationDataModule(root=str(tmp_path)).setup("test")


def test_sidd_bench_yields_blocks_without_ground_truth(tmp_path):
    write_sidd_benchmark(tmp_path / "SIDD_Benchmark", n=2, k=2, size=16)
    dm = SIDDBenchmarkDataModule(root=str(tmp_path))
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert len(batches) == 4 and "clean" not in batches[0]
    assert batches[3]["index"].tolist() == [[1, 1]]
    with pytest.raises(ConfigError, match="evaluation images only"):
        dm.train_dataloader()


def test_sidd_bench_missing_file_names_what_and_where(tmp_path):
    with pytest.raises(DataError, match="BenchmarkNoisyBlocksSrgb.mat.*https://abdokamel.github.io/sidd/"):
        SIDDBenchmarkDataModule(root=str(tmp_path)).setup("test")


@pytest.mark.skipif(not (SHARED / "sidd_samples" / "val_blocks.mat").is_file(), reason="shared data absent")
def test_real_validation_blocks_of_shared_data():
    dm = SIDDValidationDataModule(root=str(SHARED / "sidd_samples"))
    dm.setup("test")
    assert len(dm.test_set) == 28
    psnrs = []
    for batch in dm.test_dataloader():
        assert batch["noisy"].shape == (1, 3, 256, 256)
        mse = (batch["noisy"].double() - batch["clean"].double()).pow(2).mean()
        psnrs.append(float(10 * torch.log10(1 / mse)))
    assert psnrs[0] == pytest.approx(22.79, abs=0.01)  # 06.png, README table
    assert np.mean(psnrs) == pytest.approx(22.02, abs=0.01)


# ------------------------------------------------------------------ patch cache


def test_patch_starts_cover_the_image_with_the_overlap():
    assert patch_starts(1280, 512, 384) == [0, 384, 768]
    assert patch_starts(1300, 512, 384) == [0, 384, 768, 788]
    assert patch_starts(100, 512, 384) == []


def test_prepare_script_cuts_resumes_and_the_datamodule_uses_the_cache(sidd_root):
    data_dir = find_data_dir(sidd_root)
    assert prepare_sidd(["--root", str(sidd_root), "--size", "48", "--overlap", "16", "--no-progress"]) == 0
    cache = default_patch_dir(data_dir, 48, 16)
    patches = sorted(cache.glob("*.png"))
    assert len(patches) == 4 * 3 * 4  # 96 -> rows 0, 32, 48; 128 -> cols 0, 32, 64, 80
    # an interrupted run: manifest and one image's marker and patches gone -> only that image is redone
    (cache / "manifest.json").unlink()
    first = min((cache / ".done").glob("*.json"))
    first.unlink()
    redo = sorted(cache.glob(f"{first.stem}_*.png"))
    for path in redo:
        path.unlink()
    untouched = patches[-1].stat().st_mtime_ns
    dm = module(sidd_root, crop_size=40)
    with pytest.warns(UserWarning, match="incomplete"):
        dm.setup("fit")
    assert len(dm.train_set.images) == 4  # full images while the cache is incomplete
    manifest = cut_patches([n for n, _ in medium_images(data_dir)], cache, 48, 16, progress=False)
    assert manifest["complete"] and manifest["count"] == 48 and all(p.is_file() for p in redo)
    assert patches[-1].stat().st_mtime_ns == untouched
    dm = module(sidd_root, crop_size=40)
    dm.setup("fit")
    assert len(dm.train_set.images) == 48
    assert next(iter(dm.train_dataloader()))["noisy"].shape == (2, 3, 40, 40)
    dm = module(sidd_root, crop_size=60)  # patches too small for the crop: full images
    with pytest.warns(UserWarning, match="smaller than data.crop_size=60"):
        dm.setup("fit")
    assert len(dm.train_set.images) == 4
    with pytest.raises(DataError, match="data.use_patches=always"):
        module(sidd_root, crop_size=60, use_patches="always").setup("fit")
    shutil.rmtree(cache)


def test_prepare_script_reports_a_missing_root_in_one_line(tmp_path, capsys):
    assert prepare_sidd(["--root", str(tmp_path / "none"), "--no-progress"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "https://abdokamel.github.io/sidd/" in stderr
