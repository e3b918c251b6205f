"""Distillation and every experiment that runs without external data (a few steps each)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from denoise.cli.errors import find_user_error
from denoise.cli.train import train
from denoise.errors import ConfigError, UserInputError
from denoise.lit import BlindSpotModule, DistillationModule, load_model
from denoise.nets.unet import UNet
from tests.conftest import CONFIGS, compose_train

STEPS = ["debug=fast", "trainer.max_steps=2", "trainer.val_check_interval=2", "logger=csv"]
TINY = [*STEPS, "data.val_size=64", "data.crop_size=64", "data.batch_size=2", "data.epoch_length=32"]
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("teacher")
    train(compose_train(TINY, run_dir))
    return run_dir / "checkpoints" / "last.ckpt"


def test_student_is_the_tbsn_unet():
    net = UNet()
    assert sum(p.numel() for p in net.parameters()) == 1_083_747  # "1.08M" in the TBSN paper
    assert sum(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.1 for m in net.modules()) == 17
    assert net(torch.rand(1, 3, 45, 70)).shape == (1, 3, 45, 70)  # any size (padded to 32 inside)


def test_distillation_trains_a_student_that_loads_like_any_model(teacher_ckpt, tmp_path):
    cfg = compose_train(["experiment=demo_distill", *TINY, f"model.teacher_ckpt={teacher_ckpt}",
                         "callbacks=default"], tmp_path)
    metrics = train(cfg)
    assert "val/psnr" in metrics and np.isfinite(metrics["train/loss"])
    path = tmp_path / "checkpoints" / "last.ckpt"
    student = load_model(path)
    assert type(student) is DistillationModule and isinstance(student.net, UNet)
    assert not any(key.startswith("teacher") for key in torch.load(path, weights_only=False)["state_dict"])
    noisy = torch.rand(1, 3, 40, 52)
    assert student.denoise(noisy).shape == noisy.shape  # the interface eval.py / predict.py use
    assert type(load_model(teacher_ckpt)) is BlindSpotModule


def test_distillation_without_a_teacher_says_what_to_set(tmp_path):
    cfg = compose_train(["experiment=demo_distill", *TINY, "callbacks=none"], tmp_path)
    with pytest.raises(ConfigError, match="model.teacher_ckpt is not set"):
        train(cfg)


def _tiny_cube(path):
    rng = np.random.default_rng(0)
    cube = rng.random((48, 64, 8)).astype(np.float32)  # H x W x bands
    scipy.io.savemat(path, {"rad": cube})
    return path


def _tiny_photos(folder):
    rng = np.random.default_rng(0)
    for sub in ("noisy", "gt"):
        (folder / sub).mkdir(parents=True)
    for name in ("a.png", "b.png"):
        clean = rng.random((48, 56, 3))
        Image.fromarray((clean * 255).astype(np.uint8)).save(folder / "gt" / name)
        noisy = np.clip(clean + 0.1 * rng.standard_normal(clean.shape), 0, 1)
        Image.fromarray((noisy * 255).astype(np.uint8)).save(folder / "noisy" / name)
    return folder


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_runs_a_few_steps_or_asks_for_its_data(experiment, teacher_ckpt, tmp_path):
    demo = experiment.startswith("demo")
    overrides = [f"experiment={experiment}", *(TINY if demo else STEPS), "callbacks=none", "logger=none"]
    if experiment.endswith("distill"):
        overrides.append(f"model.teacher_ckpt={teacher_ckpt}")
    if experiment.startswith("hsi"):
        cube = _tiny_cube(tmp_path / "cube.mat")
        overrides += [f"data.files=[{cube}]", "data.bands=8", "data.crop_size=32", "data.batch_size=2"]
        if experiment == "hsi_cube":  # real noise: references of the same name validate
            (tmp_path / "refs").mkdir()
            overrides.append(f"data.reference_files=[{_tiny_cube(tmp_path / 'refs' / 'cube.mat')}]")
    if experiment.startswith("photos"):  # a folder of the user's photos, with references to validate
        folder = _tiny_photos(tmp_path / "photos")
        overrides += [f"data.noisy_dir={folder}/noisy", f"data.clean_dir={folder}/gt", "data.crop_size=40",
                      "data.batch_size=2", "data.val_fraction=0.5"]
    if experiment.startswith("sidd"):
        overrides.append(f"data.root={tmp_path}/SIDD")
        with pytest.raises(Exception) as error:
            train(compose_train(overrides, tmp_path / "run"))
        assert isinstance(find_user_error(error.value), UserInputError)
        assert f"{tmp_path}/SIDD" in str(find_user_error(error.value))
        return
    metrics = train(compose_train(overrides, tmp_path / "run"))
    assert np.isfinite(metrics["train/loss"]) and "val/psnr" in metrics
