"""eval.py: metrics equal to an independent scikit-image computation, submissions in the exact
server formats, the HSI protocol, one-line errors, and the demo checkpoint on real SIDD blocks."""

from __future__ import annotations

import base64
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from denoise.cli.eval import evaluate
from denoise.errors import ConfigError
from tests.conftest import SHARED_DATA, compose_entry, run_entry

SRGB_KEYS = {"psnr", "ssim_gaussian", "ssim_uniform"}


def demo_checkpoint(tmp_path_factory) -> Path:
    """A 2-step demo training run (tbsn_small), made once per test session and shared by the modules."""
    run_dir = tmp_path_factory.getbasetemp() / "demo_checkpoint"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        result = run_entry(
            "train.py",
            ["debug=fast", "trainer.max_steps=2", "data.val_size=64", "data.crop_size=32", "data.batch_size=2"],
            run_dir,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return demo_checkpoint(tmp_path_factory)


def compose_eval(overrides: list[str], run_dir: Path):
    """The composed eval config as `python eval.py <overrides>` would see it, run dir ``run_dir``."""
    return compose_entry("eval", overrides, run_dir)


def run_eval(args: list[str], run_dir: Path) -> subprocess.CompletedProcess:
    return run_entry("eval.py", args, run_dir)


def sidd_like_blocks(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) uint8 blocks (N, K, H, W, 3) with smooth structure and noise."""
    rng = np.random.default_rng(seed)
    n, k, h, w, _ = shape
    y, x = np.mgrid[0:h, 0:w]
    clean = np.empty(shape, dtype=np.uint8)
    for i in range(n):
        for j in range(k):
            phase = rng.uniform(0, 6, 3)
            planes = [128 + 90 * np.sin(x / (4 + c) + phase[c]) * np.cos(y / (5 + c)) for c in range(3)]
            clean[i, j] = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    noisy = np.clip(clean + rng.normal(0, 15, shape) + 0.5, 0, 255).astype(np.uint8)
    return noisy, clean


def _skimage_scores(estimate: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """Independent computation on uint8 (H, W, 3) arrays: TBSN's and AP-BSN's calls."""
    return {
        "psnr": peak_signal_noise_ratio(clean, estimate, data_range=255),
        "ssim_gaussian": structural_similarity(
            estimate, clean, channel_axis=-1, gaussian_weights=True, sigma=1.5, data_range=255
        ),
        "ssim_uniform": structural_similarity(estimate, clean, channel_axis=-1, data_range=255),
    }


def test_eval_on_sidd_format_blocks_matches_scikit_image_on_the_saved_outputs(checkpoint, tmp_path):
    noisy, clean = sidd_like_blocks((2, 2, 37, 45, 3))  # odd sizes: padding for PD and the network
    blocks = tmp_path / "blocks.mat"
    scipy.io.savemat(blocks, {"ValidationNoisyBlocksSrgb": noisy, "ValidationGtBlocksSrgb": clean})
    run_dir = tmp_path / "run"
    result = run_eval(
        [
            f"ckpt_path={checkpoint}",
            "data=sidd_val",
            f"data.noisy_file={blocks}",
            "save_outputs=true",
            "panels=2",
            "inference.r3_passes=1",
        ],
        run_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert (
        f"Run directory: {run_dir}" in output
        and "PSNR (dB): noisy" in output
        and "SSIM (uniform 7x7)" in output
    )

    results = json.loads((run_dir / "results.json").read_text())
    assert set(results["metrics"]) == set(results["baseline"]) == SRGB_KEYS
    assert results["images"] == 4 and results["inference"]["r3_passes"] == 1
    assert results["checkpoint"] == str(checkpoint.resolve()) and results["data"]["name"] == "sidd_val"
    assert (
        results["protocol"]["name"] == "srgb"
        and "gaussian_weights=True" in results["protocol"]["description"]
    )
    assert results["wall_time_s"] > 0
    rows = list(csv.DictReader((run_dir / "per_image.csv").read_text().splitlines()))
    assert [row["name"] for row in rows] == ["00_00", "00_01", "01_00", "01_01"]
    assert len(list((run_dir / "panels").glob("*.png"))) == 2

    expected, baseline = [], []
    for n in range(2):
        for k in range(2):
            saved = np.asarray(Image.open(run_dir / "outputs" / f"{n:02d}_{k:02d}.png"))
            assert saved.shape == (37, 45, 3) and saved.dtype == np.uint8
            expected.append(_skimage_scores(saved, clean[n, k]))
            baseline.append(_skimage_scores(noisy[n, k], clean[n, k]))
    for key in SRGB_KEYS:
        assert results["metrics"][key] == pytest.approx(np.mean([e[key] for e in expected]), abs=1e-6)
        assert results["baseline"][key] == pytest.approx(np.mean([b[key] for b in baseline]), abs=1e-6)
    assert float(rows[3]["psnr"]) == pytest.approx(expected[3]["psnr"], abs=1e-6)


def test_sidd_benchmark_submission_has_the_exact_keys_dtype_and_shape(checkpoint, tmp_path):
    noisy, _ = sidd_like_blocks((2, 3, 32, 32, 3), seed=1)
    scipy.io.savemat(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": noisy})
    run_dir = tmp_path / "run"
    results = evaluate(
        compose_eval(
            [
                f"ckpt_path={checkpoint}",
                "data=sidd_bench",
                f"data.root={tmp_path}",
                "save_outputs=true",
                "panels=0",
            ],
            run_dir,
        )
    )
    assert results["metrics"] is None and results["images"] == 6

    submitted = scipy.io.loadmat(run_dir / "submission" / "SubmitSrgb.mat")
    assert [key for key in submitted if not key.startswith("__")] == ["DenoisedBlocksSrgb"]
    blocks = submitted["DenoisedBlocksSrgb"]
    assert blocks.dtype == np.uint8 and blocks.shape == noisy.shape == (2, 3, 32, 32, 3)
    with open(run_dir / "submission" / "SubmitSrgb.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ID", "BLOCK"] and [row[0] for row in rows[1:]] == [str(i) for i in range(6)]
    for i, (_, encoded) in enumerate(rows[1:]):
        decoded = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(32, 32, 3)
        assert np.array_equal(decoded, blocks[i // 3, i % 3])
        saved = np.asarray(Image.open(run_dir / "outputs" / f"{i // 3:02d}_{i % 3:02d}.png"))
        assert np.array_equal(saved, blocks[i // 3, i % 3])  # the submission holds the evaluated outputs


def test_dnd_submission_bundles(checkpoint, tmp_path):
    from tests.data_fixtures import write_dnd

    write_dnd(tmp_path / "dnd", images=2, boxes=3, size=(64, 72), box=32)
    run_dir = tmp_path / "run"
    results = evaluate(
        compose_eval(
            [f"ckpt_path={checkpoint}", "data=dnd", f"data.root={tmp_path / 'dnd'}", "panels=0"], run_dir
        )
    )
    assert results["submission"]["bundles"] == 2
    for image in (1, 2):
        bundle = scipy.io.loadmat(run_dir / "submission" / f"{image:04d}.mat")
        assert sorted(key for key in bundle if not key.startswith("__")) == [
            "Idenoised",
            "eval_version",
            "israw",
        ]
        crops = bundle["Idenoised"]
        assert crops.dtype == object and crops.shape == (1, 3)
        for crop in crops.ravel():
            assert (
                crop.shape == (32, 32, 3) and crop.dtype == np.float32 and 0 <= crop.min() <= crop.max() <= 1
            )
        assert not bundle["israw"].item() and bundle["eval_version"].item() == "1.0"


def test_demo_eval_uses_the_checkpoint_settings_unless_overridden(checkpoint, tmp_path):
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["hyper_parameters"]["inference"]
    small = ["data.val_size=64", "limit=1"]
    results = evaluate(compose_eval([f"ckpt_path={checkpoint}", *small, "panels=1"], tmp_path / "a"))
    assert results["images"] == 1 and set(results["metrics"]) == SRGB_KEYS
    assert results["baseline"]["psnr"] < 25  # the demo's correlated noise, sigma 25
    assert all(results["inference"][key] == value for key, value in saved.items())
    assert (tmp_path / "a" / "per_image.csv").is_file() and len(results["panels"]) == 1

    results = evaluate(
        compose_eval(
            [
                f"ckpt_path={checkpoint}",
                *small,
                "panels=0",
                "inference.tile_size=32",
                "inference.tile_overlap=8",
                "inference.ensemble=pass",
                "inference.r3_passes=1",
            ],
            tmp_path / "b",
        )
    )
    assert (results["inference"]["tile_size"], results["inference"]["ensemble"]) == (32, "pass")


def test_hsi_protocol_reports_mpsnr_mssim_sam_ergas(checkpoint, tmp_path):
    from tests.data_fixtures import hsi_cube

    np.save(tmp_path / "cube.npy", hsi_cube(40, 44, bands=3))
    results = evaluate(
        compose_eval(
            [
                f"ckpt_path={checkpoint}",
                "data=hsi",
                "noise=hsi_gaussian",
                f"data.files=[{tmp_path / 'cube.npy'}]",
                f"data.test_files=[{tmp_path / 'cube.npy'}]",
                "data.bands=3",
                "data.crop_size=16",
                "panels=0",
            ],
            tmp_path / "run",
        )
    )
    assert results["protocol"]["name"] == "hsi"
    assert (
        set(results["metrics"])
        == set(results["baseline"])
        == {"mpsnr", "mssim", "sam_rad", "sam_deg", "ergas"}
    )
    assert results["metrics"]["sam_deg"] == pytest.approx(np.degrees(results["metrics"]["sam_rad"]))
    assert results["baseline"]["mpsnr"] < 20  # sigma 50


def test_missing_or_corrupt_checkpoint_is_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate(compose_eval([f"ckpt_path={tmp_path / 'none.ckpt'}"], tmp_path / "a"))
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    result = run_eval([f"ckpt_path={corrupt}"], tmp_path / "b")
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ckpt_path=") and "not a readable checkpoint" in lines[-1]
    assert "Traceback" not in result.stderr


def test_demo_checkpoint_on_the_shared_sidd_validation_blocks(checkpoint, tmp_path):
    blocks = SHARED_DATA / "sidd_samples" / "val_blocks.mat"
    if not blocks.is_file():
        pytest.skip("../shared/data/sidd_samples/val_blocks.mat is not present")
    results = evaluate(
        compose_eval(
            [f"ckpt_path={checkpoint}", "data=sidd_val", f"data.noisy_file={blocks}", "limit=2", "panels=0"],
            tmp_path / "run",
        )
    )
    rows = list(csv.DictReader((tmp_path / "run" / "per_image.csv").read_text().splitlines()))
    # Block PSNRs of the noisy input, as documented in shared/data/README.md.
    assert [round(float(row["noisy_psnr"]), 2) for row in rows] == [22.79, 30.15]
    assert results["baseline"]["psnr"] == pytest.approx(np.mean([22.79, 30.15]), abs=0.01)
    assert set(results["metrics"]) == SRGB_KEYS
