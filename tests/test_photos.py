"""photos.py: the recipe for your own photos (teacher -> student -> denoised images), and its bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import initialize_config_dir
from PIL import Image

from denoise.cli.photos import max_time, split_overrides, stage_budgets
from denoise.errors import ConfigError, DataError
from denoise.lit import load_model
from tests.conftest import CONFIGS, compose_entry, run_entry

RNG = np.random.default_rng(0)
# Two training steps per stage on 40x40 crops: the whole pipeline in seconds.
FAST = ["photos.budget_minutes=null", "trainer.max_steps=2", "data.crop_size=40", "data.batch_size=2",
        "logger=csv"]


def write_photos(folder, names=("a.png", "b.png"), size=(48, 56), channels=3, clean=False):
    """Noisy photos (and their clean references under gt/ when ``clean``): smooth images plus noise."""
    for sub in ("noisy", "gt") if clean else ("noisy",):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        y, x = np.mgrid[: size[0], : size[1]] / max(size)
        image = np.stack([(np.sin(4 * x + c) * np.cos(3 * y) + 1) / 2 for c in range(channels)], -1)
        noisy = np.clip(image + 0.1 * RNG.standard_normal(image.shape), 0, 1)
        for sub, array in (("noisy", noisy), ("gt", image)) if clean else (("noisy", noisy),):
            data = (array * 255).astype(np.uint8)
            Image.fromarray(data[..., 0] if channels == 1 else data).save(folder / sub / name)
    return folder


def test_recipe_composes_with_the_real_noise_settings(tmp_path):
    cfg = compose_entry("photos", ["data.noisy_dir=x"], tmp_path)
    assert cfg.data._target_.endswith("FolderDataModule") and cfg.noise._target_.endswith("NoNoise")
    assert cfg.model.train_pd.factor == 5 and cfg.model.inference.pd_factor == 2
    assert cfg.model.inference.r3_passes == 8 and cfg.model.inference.r3_p == 0.16
    assert cfg.photos.budget_minutes == 10 and cfg.trainer.max_time
    student = compose_entry("train", ["experiment=photos_distill", "data.noisy_dir=x"], tmp_path)
    assert student.model.inference.restore_detail is True  # the delivered model restores detail
    assert student.model.inference.smooth_chroma is True  # after smoothing its chroma
    assert student.model.inference.nonlocal_blend == 0.3  # and blends in non-local means
    assert student.model.inference.edge_wiener_passes == 1  # then sharpens its edges, last
    assert not cfg.model.inference.restore_detail  # the teacher's targets are its plain protocol
    assert not cfg.model.inference.smooth_chroma
    assert not cfg.model.inference.nonlocal_blend
    assert not cfg.model.inference.edge_wiener_passes


def test_budget_splits_into_lightning_max_times():
    assert max_time(61) == "00:00:01:01" and max_time(90061) == "01:01:01:01" and max_time(0.2) == "00:00:00:01"
    assert stage_budgets(10, 0.7) == {"teacher": "00:00:07:00", "student": "00:00:03:00"}
    assert stage_budgets(None, 0.6) == {"teacher": None, "student": None}
    with pytest.raises(ConfigError, match="photos.budget_minutes=-1"):
        stage_budgets(-1, 0.6)
    with pytest.raises(ConfigError, match="photos.teacher_share=1.5"):
        stage_budgets(10, 1.5)


def test_model_overrides_go_to_the_teacher_only():
    shared, teacher = split_overrides(
        ["data.noisy_dir=x", "model.optimizer.lr=1e-3", "model/net=tbsn_small", "trainer=gpu",
         "photos.budget_minutes=5", "experiment=photos", "hydra.run.dir=y"]
    )
    assert shared == ["data.noisy_dir=x", "trainer=gpu"]
    assert teacher == ["model.optimizer.lr=1e-3", "model/net=tbsn_small"]


def test_one_command_trains_both_stages_and_writes_every_photo(tmp_path):
    folder = write_photos(tmp_path / "photos", clean=True)
    run = tmp_path / "run"
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", f"data.clean_dir={folder}/gt",
                                     "data.val_fraction=0.5", *FAST], run)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("a.png", "b.png"):
        out = np.asarray(Image.open(run / "denoised" / name))
        assert out.shape == (48, 56, 3) and out.dtype == np.uint8
    summary = json.loads((run / "photos.json").read_text())
    assert set(summary["seconds"]) == {"teacher", "student", "denoise"}
    assert "val/psnr" in summary["metrics"]["student"]  # validated against the clean references
    assert (run / "teacher" / "checkpoints" / "last.ckpt").is_file()
    # The delivered images are the student checkpoint's own denoise, its four finishing steps included.
    student = load_model(run / "student" / "checkpoints" / "last.ckpt")
    assert student.inference.restore_detail and student.inference.smooth_chroma
    assert student.inference.nonlocal_blend == 0.3 and student.inference.edge_wiener_passes == 1
    noisy = torch.from_numpy(np.array(Image.open(folder / "noisy" / "a.png"))).permute(2, 0, 1)[None] / 255.0
    with torch.no_grad():
        expected = (student.denoise(noisy.float())[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy()
    written = np.asarray(Image.open(run / "denoised" / "a.png")).astype(np.float64)
    assert np.abs(written - expected).max() <= 1


def test_photos_without_references_keep_the_final_weights_of_a_time_budget(tmp_path):
    """No clean images, so no validation: last.ckpt must still hold the step the budget ended at."""
    folder = write_photos(tmp_path / "photos")
    run = tmp_path / "run"
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", "photos.budget_minutes=0.1",
                                     "data.crop_size=40", "data.batch_size=2", "logger=csv"], run)
    assert result.returncode == 0, result.stderr[-2000:]
    for stage in ("teacher", "student"):
        with open(run / stage / "csv" / "metrics.csv") as file:
            steps = [int(row["step"]) for row in csv.DictReader(file) if row["step"]]
        saved = torch.load(run / stage / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
        assert saved >= max(steps) > 0  # logged steps count from 0: the last logged one was trained
    assert sorted(p.name for p in (run / "denoised").iterdir()) == ["a.png", "b.png"]
    # A clean console: no third-party warnings (no validation data here), one progress line of
    # stages and steps, and a summary of where the photos are and what each stage took.
    for noise in ("LeafSpec", "Total length of `DataLoader`", "Checkpoint directory", "Epoch", "litlogger",
                  "Total FLOPs"):
        assert noise not in result.stdout + result.stderr, noise
    assert "teacher step " in result.stdout and "student step " in result.stdout and " left of 0:06 budget" in result.stdout
    assert f"Denoised photos: 2 of 2 in {run / 'denoised'}" in result.stdout + result.stderr
    assert "steps), student 0:0" in result.stdout + result.stderr


def test_without_checkpoints_the_pipeline_says_what_to_keep(tmp_path):
    folder = write_photos(tmp_path / "photos")
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", *FAST, "callbacks=none"], tmp_path / "run")
    assert result.returncode == 1 and "callbacks=default" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "case, expected",
    [
        ("empty", ["data.noisy_dir=", "no images"]),
        ("mixed", ["a.png has 3", "b.npy has 4"]),
        ("small", ["a.png", "data.crop_size=40"]),
        ("grey", ["grey.png has 1", "has 3"]),
    ],
)
def test_bad_folders_are_one_line(case, expected, tmp_path):
    folder = tmp_path / "photos"
    if case == "empty":
        (folder / "noisy").mkdir(parents=True)
    elif case == "mixed":
        write_photos(folder, ["a.png"])
        rgba = np.asarray(Image.open(folder / "noisy" / "a.png").convert("RGBA"))
        np.save(folder / "noisy" / "b.npy", rgba.astype(np.float32) / 255)  # four channels
    elif case == "small":
        write_photos(folder, ["a.png"], size=(24, 24))
    else:
        write_photos(folder, ["a.png", "b.png"])
        write_photos(folder, ["grey.png"], channels=1)
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", *FAST], tmp_path / "run")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert all(part in errors[0] for part in expected), errors[0]


def test_outputs_that_cannot_be_written_stop_before_the_training(tmp_path):
    folder = write_photos(tmp_path / "photos")
    run = tmp_path / "run"
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", f"photos.output={folder}/noisy", *FAST], run)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert "photos.output=" in errors[0] and "overwrite the input files a.png, b.png" in errors[0]
    assert not (run / "teacher").exists()  # nothing was trained


def test_photos_not_written_end_the_run_with_their_names(tmp_path, monkeypatch):
    """predict.py reports a photo it could not denoise; photos.py must not end as if all were done."""
    import denoise.cli.photos as photos_module

    folder = write_photos(tmp_path / "photos")
    run = tmp_path / "run"

    def fake_train(cfg):
        checkpoint = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.write_bytes(b"")
        return {}

    monkeypatch.setattr(photos_module, "train", fake_train)
    monkeypatch.setattr(photos_module, "predict", lambda cfg: {
        "written": [str(run / "denoised" / "a.png")], "failed": {"b.png": "b.png: truncated PNG"}})
    cfg = compose_entry("photos", [f"data.noisy_dir={folder}/noisy", *FAST], run)
    not_written = r"1 photo\(s\) not written: b.png: b.png: truncated PNG"
    with initialize_config_dir(str(CONFIGS), version_base="1.3"), pytest.raises(DataError, match=not_written):
        photos_module.photos(cfg, [f"data.noisy_dir={folder}/noisy", *FAST])
    assert json.loads((run / "photos.json").read_text())["failed"] == {"b.png": "b.png: truncated PNG"}


def test_photos_smaller_than_the_recipes_crop_train_on_a_crop_that_fits(tmp_path):
    """96x128 photos, the teacher's recipe crops 160: it trains on 95 (a multiple of PD 5) instead."""
    folder = write_photos(tmp_path / "photos", size=(96, 128))
    run = tmp_path / "run"
    result = run_entry("photos.py", [f"data.noisy_dir={folder}/noisy", "photos.budget_minutes=null",
                                     "trainer.max_steps=2", "data.batch_size=2", "logger=csv"], run)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the teacher trains on 95x95 crops instead of 160" in result.stdout + result.stderr
    teacher = (run / "teacher" / "csv" / "hparams.yaml").read_text()
    assert "crop_size: 95" in teacher
    assert sorted(p.name for p in (run / "denoised").iterdir()) == ["a.png", "b.png"]
