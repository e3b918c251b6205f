"""scripts/benchmark_quality.py: the recipe beside classical filters on noisy / clean pairs (tiny folders)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def pairs(folder: Path, names=("a.png", "b.png"), size=(48, 48)) -> Path:
    rng = np.random.default_rng(1)
    for sub in ("noisy", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name in names:
        y, x = np.mgrid[: size[0], : size[1]] / max(size)
        clean = np.stack([(np.sin(5 * x + c) * np.cos(4 * y) + 1) / 2 for c in range(3)], -1)
        noisy = np.clip(clean + 0.08 * rng.standard_normal(clean.shape), 0, 1)
        Image.fromarray((clean * 255 + 0.5).astype(np.uint8)).save(folder / "gt" / name)
        Image.fromarray((noisy * 255 + 0.5).astype(np.uint8)).save(folder / "noisy" / name)
    return folder


def benchmark(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_quality.py"), "--threads", "1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout, check=False)


def test_nlm_with_its_estimated_strength_beats_the_noisy_input_and_is_reported(tmp_path):
    folder, out = pairs(tmp_path / "pairs"), tmp_path / "out"
    done = benchmark(str(folder), "--methods", "nlm", "--tuned", "nlm", "--tuned-factors", "1,2", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == ["noisy", "nlm", "nlm_gt_tuned"] and set(results["per_image"]) == {"a", "b"}
    assert results["mean"]["nlm"]["psnr"] > results["mean"]["noisy"]["psnr"] + 1
    assert results["mean"]["nlm_gt_tuned"]["psnr"] >= results["mean"]["nlm"]["psnr"]
    assert results["tuned"]["nlm_gt_tuned"]["factor"] in (1.0, 2.0) and "nlm" in results["seconds"]
    assert 0.05 < results["estimated_sigma_255"]["a"] / 255 / 0.08 < 2  # the estimate sees the noise
    assert "| **mean** |" in (out / "table.md").read_text() and "| **mean** |" in done.stdout
    panel = np.asarray(Image.open(out / "panels" / "a.png"))
    assert panel.shape == (48, 4 * 48, 3)  # noisy | nlm | nlm_gt_tuned | clean


def test_bm3d_runs_when_installed(tmp_path):
    pytest.importorskip("bm3d")
    folder, out = pairs(tmp_path / "pairs", names=("a.png",), size=(40, 40)), tmp_path / "out"
    done = benchmark(str(folder), "--methods", "bm3d", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["mean"]["bm3d"]["psnr"] > results["mean"]["noisy"]["psnr"]


@pytest.mark.slow
def test_the_recipe_runs_as_one_command_and_is_scored_beside_the_filters(tmp_path):
    folder, out = pairs(tmp_path / "pairs"), tmp_path / "out"
    done = benchmark(str(folder), "--methods", "recipe,nlm", "--minutes", "0.05", "--teacher", "--out", str(out),
                     "--recipe-args", "trainer.max_steps=2 data.crop_size=40 data.batch_size=2")
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == ["noisy", "recipe", "teacher", "nlm"]
    assert set(results["recipe"]["stage_seconds"]) == {"teacher", "student", "denoise"}
    assert results["seconds"]["recipe"] > 0 and np.isfinite(results["mean"]["recipe"]["psnr"])


def test_bad_folders_are_one_line(tmp_path):
    (tmp_path / "only_noisy" / "noisy").mkdir(parents=True)
    done = benchmark(str(tmp_path / "only_noisy"), "--methods", "nlm")
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'only_noisy' / 'gt'}: no such folder; expected {tmp_path / 'only_noisy'} to hold noisy/ and gt/"
    ]
    folder = pairs(tmp_path / "pairs")
    (folder / "gt" / "b.png").unlink()
    done = benchmark(str(folder), "--methods", "nlm")
    assert done.returncode == 1 and "b.png: missing" in done.stderr.strip().splitlines()[-1]
