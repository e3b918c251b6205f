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
    assert "| nlm_gt_tuned | " in done.stdout and "edge contrast" in (out / "table.md").read_text()
    for method in results["methods"]:  # what a photographer sees, beside PSNR
        assert {"edge_contrast", "blotch_luma", "blotch_chroma"} <= set(results["mean"][method])
    assert results["mean"]["noisy"]["edge_contrast"] == pytest.approx(1, abs=0.1)  # noise is not sharpness
    assert results["mean"]["nlm"]["edge_contrast"] < results["mean"]["noisy"]["edge_contrast"]
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


def test_outputs_written_elsewhere_are_scored_beside_the_methods(tmp_path):
    folder, out = pairs(tmp_path / "pairs"), tmp_path / "out"
    written = tmp_path / "written"
    written.mkdir()
    for name in ("a", "b"):  # another tool's outputs, here perfect ones, in another format
        Image.open(folder / "gt" / f"{name}.png").save(written / f"{name}.tif")
    done = benchmark(str(folder), "--methods", "nlm", "--outputs", f"mine={written}", "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == ["noisy", "nlm", "mine"] and results["outputs"] == {"mine": str(written)}
    assert results["mean"]["mine"]["psnr"] > 100 and results["mean"]["mine"]["edge_contrast"] == pytest.approx(1)
    assert results["mean"]["mine"]["blotch_luma"] == pytest.approx(0, abs=1e-4)  # in 8-bit levels


@pytest.mark.parametrize("outputs, expected", [
    ("mine", "--outputs: 'mine'; expected label=folder"),
    ("nlm={written}", "--outputs: label 'nlm' is taken; choose another"),
    ("bm3d_gt_tuned={written}", "--outputs: label 'bm3d_gt_tuned' is taken; choose another"),
    ("mine={missing}", "--outputs: {missing} is not a folder"),
])
def test_bad_outputs_are_one_line(tmp_path, outputs, expected):
    folder, written, missing = pairs(tmp_path / "pairs"), tmp_path / "written", tmp_path / "missing"
    written.mkdir()
    done = benchmark(str(folder), "--methods", "nlm", "--outputs", outputs.format(written=written, missing=missing))
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith(
        expected.format(written=written, missing=missing))


def test_an_output_missing_or_of_another_size_is_named(tmp_path):
    folder, written = pairs(tmp_path / "pairs"), tmp_path / "written"
    written.mkdir()
    Image.open(folder / "gt" / "a.png").save(written / "a.png")
    done = benchmark(str(folder), "--methods", "nlm", "--outputs", f"mine={written}")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
        f"error: {written}: no output for b (expected b.<extension>)")
    Image.open(folder / "gt" / "a.png").crop((0, 0, 40, 48)).save(written / "b.png")
    done = benchmark(str(folder), "--methods", "nlm", "--outputs", f"mine={written}")
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
        f"error: {written / 'b.png'}: (48, 40, 3); expected the noisy photo's (48, 48, 3)")


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
