"""cubes.py: your own noisy hyperspectral cubes in one command (train -> denoised cubes), and its bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tifffile
import torch
from omegaconf import OmegaConf

from denoise.cli.cube_denoise import CubeReading, blend_with_noisy, denoise_cube_file
from denoise.cli.cubes import cubes, training_overrides
from denoise.cli.predict import predict
from denoise.data.formats.hsi_cube import normalization, probe_cube, write_cube
from denoise.errors import ConfigError, DataError
from denoise.lit.blind_spot import BlindSpotModule
from denoise.ops import InferenceSettings
from tests.conftest import compose_entry, compose_net, run_entry
from tests.data_fixtures import write_mat_v73

# 30 steps of the recipe's network on 32x32 crops: enough to beat strong synthetic noise, in seconds.
FAST = ["cubes.budget_minutes=null", "trainer.max_steps=30", "trainer.val_check_interval=30", "data.crop_size=32",
        "data.batch_size=4", "model.optimizer.lr=2e-3", "logger=csv"]
SIGMA = 600.0


def smooth_cube(height=40, width=48, bands=12) -> np.ndarray:
    """H x W x bands, 2500-4500: far from the uint16 limits, so the noise is hardly clipped."""
    y, x = np.mgrid[:height, :width] / max(height, width)
    return np.stack([(np.sin(4 * x + b / 3) * np.cos(3 * y) + 1) * 1000 + 2500 for b in range(bands)], -1)


def noisy_copy(clean: np.ndarray, sigma: float = SIGMA, seed: int = 0) -> np.ndarray:
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """One run of the command on a synthetic uint16 .mat cube with a clean reference. (Constant bands:
    the Jasper Ridge run; validation would count them as the network outputs them, not as written.)"""
    root = tmp_path_factory.mktemp("cubes")
    clean = smooth_cube()
    noisy = noisy_copy(clean)
    (root / "noisy").mkdir()
    (root / "clean").mkdir()
    scipy.io.savemat(root / "noisy" / "scene.mat", {"rad": noisy, "wavelengths": np.arange(12.0)})
    scipy.io.savemat(root / "clean" / "scene.mat", {"rad": clean.astype(np.uint16)})
    result = run_entry("cubes.py", [f"input={root / 'noisy'}", f"reference={root / 'clean'}", *FAST], root / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return root, result, noisy, clean


def test_synthetic_cube_comes_back_as_the_same_file_denoised(synthetic_run):
    root, _, noisy, clean = synthetic_run
    written = scipy.io.loadmat(root / "run" / "denoised" / "scene.mat")
    np.testing.assert_array_equal(written["wavelengths"], np.arange(12.0)[None])  # other variables kept
    out = written["rad"]
    assert out.dtype == np.uint16 and out.shape == (40, 48, 12)  # dtype and H x W x bands layout
    assert 2500 < out.mean() < 4500  # the cube's own units, not [0, 1]
    error = lambda cube: np.sqrt(np.mean((cube.astype(float) - clean) ** 2))
    assert error(out) < 0.8 * error(noisy)


def test_run_records_noise_times_checkpoint_and_reference_metrics(synthetic_run):
    root, result, _, _ = synthetic_run
    summary = json.loads((root / "run" / "cubes.json").read_text())
    assert Path(summary["checkpoint"]).is_file() and set(summary["seconds"]) == {"survey", "train", "denoise"}
    record = summary["cubes"][0]
    assert record["output"].endswith("denoised/scene.mat") and record["key"] == "rad" and record["seconds"] > 0
    sigmas = np.array(record["noise_sigma_per_band"])
    assert record["constant_bands"] == [] and len(sigmas) == 12
    np.testing.assert_allclose(sigmas, SIGMA, rtol=0.15)  # in the cube's units
    assert summary["metrics"]["val/psnr"] > summary["metrics"]["val/psnr_noisy"]  # MPSNR against the reference
    assert "val/sam" in summary["metrics"]
    scores = record["reference"]  # the written cube, blend and rounding included
    assert scores["mpsnr"] > scores["mpsnr_noisy"] + 1 and scores["sam"] < scores["sam_noisy"]
    assert len(record["noisy_share_per_band"]) == 12 and all(0 <= g < 0.8 for g in record["noisy_share_per_band"])
    log = result.stdout + result.stderr
    assert "noise sigma per band median" in log and "Denoised cubes:" in log and "against its reference" in log


def test_predict_on_a_cube_uses_the_cube_writer(synthetic_run, tmp_path):
    """predict.py with the cubes checkpoint: the image readers refuse a cube whose bands are not
    its smallest axis; an hsi checkpoint goes to the cube writer, with the same result."""
    root, _, _, _ = synthetic_run
    np.save(tmp_path / "eight.npy", np.ones((8, 40, 48), np.float32))  # another band count
    (tmp_path / "in").mkdir()
    for name in ("scene.mat",):
        (tmp_path / "in" / name).write_bytes((root / "noisy" / name).read_bytes())
    (tmp_path / "in" / "eight.npy").write_bytes((tmp_path / "eight.npy").read_bytes())
    cfg = compose_entry("predict", [f"ckpt_path={root / 'run' / 'train' / 'checkpoints' / 'last.ckpt'}",
                                    f"input={tmp_path / 'in'}", f"output={tmp_path / 'out'}"], tmp_path / "p")
    result = predict(cfg)
    assert "8 bands but the model takes 12" in result["failed"]["eight.npy"]
    np.testing.assert_array_equal(scipy.io.loadmat(tmp_path / "out" / "scene.mat")["rad"],
                                  scipy.io.loadmat(root / "run" / "denoised" / "scene.mat")["rad"])


def test_real_jasper_ridge_crop_end_to_end(shared_data, tmp_path):
    raw = scipy.io.loadmat(shared_data / "hsi" / "jasper_ridge.mat")["jasper_ridge"][:40, :40]  # uint16 H x W x 198
    cube = raw.copy()
    cube[..., 150] = 0  # zeroed like an AVIRIS water-absorption band
    (tmp_path / "in").mkdir()
    scipy.io.savemat(tmp_path / "in" / "jasper.mat", {"jasper_ridge": cube, "maxValue": np.array([[5000]])})
    result = run_entry("cubes.py", [f"input={tmp_path / 'in' / 'jasper.mat'}", f"output={tmp_path / 'out'}",
                                    "cubes.budget_minutes=null", "trainer.max_steps=2", "data.crop_size=32",
                                    "data.batch_size=2", "logger=csv"], tmp_path / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    written = scipy.io.loadmat(tmp_path / "out" / "jasper.mat")
    out = written["jasper_ridge"]
    assert out.dtype == np.uint16 and out.shape == (40, 40, 198) and written["maxValue"][0, 0] == 5000
    assert (out[..., 150] == 0).all() and 0 < out.mean() < 6000
    record = json.loads((tmp_path / "run" / "cubes.json").read_text())["cubes"][0]
    assert record["constant_bands"] == [150] and len(record["noise_sigma_per_band"]) == 198


# ----------------------------------------------------------------------------------- the cube writer


@pytest.fixture(scope="module")
def untrained_model():
    net = OmegaConf.to_container(compose_net("dbsn_small"))
    net["in_channels"] = 6
    torch.manual_seed(0)
    return BlindSpotModule(net=net, optimizer={"_target_": "torch.optim.Adam", "_partial_": True},
                           data_scale=1.0, val_protocol="hsi").eval()


SETTINGS = InferenceSettings(pd_factor=1, r3_passes=0, tile_size=16, tile_overlap=4)  # several tiles


@pytest.mark.parametrize("kind", ["npy_chw_float32", "tif_hwc_uint16", "mat_unfolded_y", "mat_v73_float64"])
def test_every_format_is_written_back_in_its_own_layout_and_dtype(tmp_path, untrained_model, kind):
    cube = noisy_copy(smooth_cube(36, 44, 6), 100)  # H x W x bands
    if kind == "npy_chw_float32":
        path, stored = tmp_path / "c.npy", np.ascontiguousarray(cube.transpose(2, 0, 1), np.float32) / 4000
        np.save(path, stored)
    elif kind == "tif_hwc_uint16":
        path, stored = tmp_path / "c.tif", cube
        tifffile.imwrite(path, stored, photometric="minisblack", planarconfig="contig")
    elif kind == "mat_v73_float64":  # written back as MATLAB v5, same variable, dtype and axis order
        path, stored = tmp_path / "c.mat", cube.astype(np.float64)
        write_mat_v73(path, {"radiance": stored})
    else:  # unmixing layout: bands x pixels (column-major) with nRow / nCol
        path, stored = tmp_path / "c.mat", cube.transpose(2, 1, 0).reshape(6, -1)
        scipy.io.savemat(path, {"Y": stored, "nRow": np.array([[36]]), "nCol": np.array([[44]])})
    target = tmp_path / "out" / path.name
    denoise_cube_file(untrained_model, SETTINGS, path, target, CubeReading(normalize="band_minmax"))
    before, after = probe_cube(path), probe_cube(target)
    assert (after.axis_order, after.bands, after.height, after.width) == (
        before.axis_order, before.bands, before.height, before.width)
    written = {"npy_chw_float32": lambda: np.load(target), "tif_hwc_uint16": lambda: tifffile.imread(target),
               "mat_unfolded_y": lambda: scipy.io.loadmat(target)["Y"],
               "mat_v73_float64": lambda: scipy.io.loadmat(target)["radiance"]}[kind]()
    assert written.shape == stored.shape and written.dtype == stored.dtype
    assert not np.array_equal(written, stored)
    assert sorted(p.name for p in target.parent.iterdir()) == [path.name]  # no temporary left


def test_band_range_of_a_checkpoint_denoises_those_bands_and_keeps_the_others(tmp_path, untrained_model):
    cube = noisy_copy(smooth_cube(32, 32, 9), 100)
    scipy.io.savemat(tmp_path / "c.mat", {"rad": cube})
    reading = CubeReading(normalize="band_minmax", band_range=(2, 8))
    denoise_cube_file(untrained_model, SETTINGS, tmp_path / "c.mat", tmp_path / "o" / "c.mat", reading)
    out = scipy.io.loadmat(tmp_path / "o" / "c.mat")["rad"]
    np.testing.assert_array_equal(out[..., [0, 1, 8]], cube[..., [0, 1, 8]])
    assert not np.array_equal(out[..., 2:8], cube[..., 2:8])


def test_blend_gives_back_the_share_of_the_residual_that_is_signal():
    """Independent network error e and noise n: the blend's error is below both, with the gain
    E[e^2] / (E[e^2] + sigma^2) per band."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(1000, 2000, (3, 64, 64)).astype(np.float32)
    sigmas = np.array([10.0, 40.0, 80.0])
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * sigmas[:, None, None].astype(np.float32)
    network = clean + rng.standard_normal(clean.shape).astype(np.float32) * 40  # its own error, independent
    blended = network.copy()
    gains = blend_with_noisy(blended, noisy, sigmas)
    np.testing.assert_allclose(gains, 40**2 / (40**2 + sigmas**2), atol=0.03)
    mse = lambda x: ((x - clean) ** 2).mean(axis=(1, 2))
    assert (mse(blended) < np.minimum(mse(network), mse(noisy))).all()


def test_constant_bands_stay_out_of_the_min_max_span():
    cube = np.stack([np.zeros((4, 4)), np.full((4, 4), 1000.0), np.linspace(1000, 2000, 16).reshape(4, 4)])
    low, span, _ = normalization(cube.astype(np.float32), "minmax")
    assert float(low[0]) == 1000 and float(span[0]) == 1000
    with pytest.raises(DataError, match="every band is constant"):
        normalization(np.zeros((3, 4, 4), np.float32), "minmax", name="zeros.mat")


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    np.save(tmp_path / "c.npy", np.ones((6, 8, 8), np.float32))
    info = probe_cube(tmp_path / "c.npy")
    (tmp_path / "out").mkdir()

    def refuse(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("denoise.data.formats.hsi_cube.os.replace", refuse)
    with pytest.raises(DataError, match=r"out/c.npy: cannot write the cube \(No space left on device\)"):
        write_cube(tmp_path / "out" / "c.npy", info, np.ones((6, 8, 8), np.float32))
    assert list((tmp_path / "out").iterdir()) == []


# ----------------------------------------------------------------------------------- bad input, before training


def run_command(tmp_path, *overrides):
    cfg = compose_entry("cubes", list(overrides), tmp_path / "run")
    return cubes(cfg, overrides=[])


def write(path: Path, **arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, next(iter(arrays.values())))
    else:
        scipy.io.savemat(path, arrays)
    return path


@pytest.mark.parametrize("case, error, message", [
    ("bands", DataError, r"cubes differ in band count \(a.mat has 12, b.mat has 8\)"),
    ("nan", DataError, r"b.npy: 1 NaN or Inf values; fix the file or leave it out of input"),
    ("2d", DataError, r"b.mat: rad is 2-D \(40x48\); expected a cube H x W x bands"),
    ("several", DataError, r"b.mat: several cube variables \(gt 40x48x12, input 40x48x12\); set mat_key="),
    ("constant", DataError, r"b.mat: every band is constant"),
])
def test_bad_cubes_stop_before_training(tmp_path, case, error, message):
    folder = tmp_path / "in"
    write(folder / "a.mat", rad=noisy_copy(smooth_cube()))
    if case == "bands":
        write(folder / "b.mat", rad=noisy_copy(smooth_cube(bands=8)))
    elif case == "nan":
        bad = smooth_cube().astype(np.float32)
        bad[1, 2, 3] = np.nan
        write(folder / "b.npy", cube=bad)
    elif case == "2d":
        write(folder / "b.mat", rad=noisy_copy(smooth_cube())[..., 0])
    elif case == "several":
        write(folder / "b.mat", gt=smooth_cube(), input=noisy_copy(smooth_cube()))
    else:
        write(folder / "b.mat", rad=np.zeros((40, 48, 12), np.uint16))
    with pytest.raises(error, match=message):
        run_command(tmp_path, f"input={folder}")
    assert not (tmp_path / "run").exists()  # nothing written, not even the output folder


def test_several_cube_variables_with_mat_key_is_fine_up_to_training(tmp_path, monkeypatch):
    write(tmp_path / "in" / "b.mat", gt=smooth_cube(), input=noisy_copy(smooth_cube()))
    def stop(run_dir, overrides, surveys, *rest):
        raise RuntimeError(surveys[0].info.key)

    monkeypatch.setattr("denoise.cli.cubes.training_config", stop)
    with pytest.raises(RuntimeError, match="^input$"):
        run_command(tmp_path, f"input={tmp_path / 'in'}", "mat_key=input")


def test_bad_outputs_and_settings_stop_before_training(tmp_path):
    cube = write(tmp_path / "in" / "a.mat", rad=noisy_copy(smooth_cube()))
    with pytest.raises(ConfigError, match=r"would overwrite the input files a.mat; choose another output folder"):
        run_command(tmp_path, f"input={cube}", f"output={tmp_path / 'in'}")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"output=.*file/out: cannot write there"):
        run_command(tmp_path, f"input={cube}", f"output={tmp_path / 'file' / 'out'}")
    with pytest.raises(ConfigError, match="input is not set"):
        run_command(tmp_path)
    with pytest.raises(ConfigError, match=r"input=.*missing.mat does not exist"):
        run_command(tmp_path, f"input={tmp_path / 'missing.mat'}")
    with pytest.raises(ConfigError, match="reference=.*: no reference named a.mat"):
        write(tmp_path / "refs" / "other.mat", rad=smooth_cube())
        run_command(tmp_path, f"input={cube}", f"reference={tmp_path / 'refs'}")
    with pytest.raises(ConfigError, match="cubes.budget_minutes=-1: expected a number of minutes > 0"):
        run_command(tmp_path, f"input={cube}", "cubes.budget_minutes=-1")
    assert not (tmp_path / "run" / "train").exists()


def test_command_keys_stay_out_of_the_training_stage():
    assert training_overrides(["input=x", "output=y", "reference=z", "mat_key=k", "layout=hwc", "cubes.budget_minutes=1",
                               "experiment=hsi_cube", "hydra.run.dir=r", "trainer.max_steps=5", "model/net=dbsn_small",
                               "data.crop_size=16"]) == ["trainer.max_steps=5", "model/net=dbsn_small", "data.crop_size=16"]


def test_two_cubes_of_one_name_from_two_folders_stop_before_training(tmp_path):
    first = write(tmp_path / "x" / "a.mat", rad=noisy_copy(smooth_cube()))
    second = write(tmp_path / "y" / "a.mat", rad=noisy_copy(smooth_cube()))
    with pytest.raises(ConfigError, match="would be written to one file"):
        run_command(tmp_path, f"input=[{first},{second}]", f"output={tmp_path / 'out'}")
