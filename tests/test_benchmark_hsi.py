"""scripts/benchmark_hsi.py: BM4D and the hyperspectral recipe scored on one held-out test region
(a 40 x 40 x 32-band crop of Jasper Ridge, a few training steps)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from denoise.data.datamodules.hsi import HSIDataModule
from denoise.data.noise import GaussianNoise, NonIIDGaussianNoise
from denoise.metrics.hsi import mpsnr
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
CUBE = SHARED_DATA / "hsi" / "jasper_ridge.mat"
TINY = ["--cube-crop", "40", "--bands", "0:32", "--threads", "1"]
BM4D = importlib.util.find_spec("bm4d") is not None


@pytest.fixture
def script(monkeypatch):
    """The benchmark as a module (it imports its sibling benchmark_common.py, as when run as a script)."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # main() sets it; restored after the test
    return importlib.import_module("benchmark_hsi")


@pytest.fixture(scope="module")
def cube() -> Path:
    if not CUBE.is_file():
        pytest.skip(f"{CUBE} is not present")
    return CUBE


@pytest.fixture(scope="module")
def run(cube, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One benchmark run as a user types it: sigma 50, BM4D when installed, the recipe for 3 steps."""
    out = tmp_path_factory.mktemp("benchmark_hsi")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "benchmark_hsi.py"), str(cube), *TINY, "--sigma", "50",
         "--minutes", "0.05", "--out", str(out), "trainer.max_steps=3"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done


def held_out(cube_npy: Path, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """The test region built here, apart from the script: hsi_bsn's datamodule settings."""
    datamodule = HSIDataModule(noise=noise, files=[str(cube_npy)], bands=32, layout="chw", normalize="minmax",
                               holdout=0.2, crop_size=32, seed=0)
    datamodule.setup("fit")
    item = datamodule.val_set[0]
    return item["noisy"], item["clean"]


def rows(table: str) -> int:
    return sum(line.startswith("| ") and not line.startswith("| method ") for line in table.splitlines())


def test_every_method_is_scored_on_the_datamodules_test_region(run):
    out = run[0]
    results = json.loads((out / "results.json").read_text())
    bm4d_rows = ["bm4d_true_sigma", "bm4d_estimated_sigma"] if BM4D else []
    assert results["methods"] == ["noisy", *bm4d_rows, "hsi_bsn_0.05min"]
    assert results["test_region_shape"] == [32, 40, 8]  # the last 20 % of the crop's 40 columns
    noisy, clean = held_out(out / "cube.npy", GaussianNoise(50.0))
    saved = np.load(out / "test_region.npz")
    assert np.array_equal(saved["noisy"], noisy.numpy()) and np.array_equal(saved["clean"], clean.numpy())
    direct = mpsnr(noisy.clamp(0, 1)[None], clean[None]).item()
    assert results["scores"]["noisy"]["mpsnr"] == pytest.approx(direct, abs=1e-9)
    for method in results["methods"]:
        row = results["scores"][method]
        estimate = torch.from_numpy(saved[method]).double().clamp(0, 1)
        assert row["mpsnr"] == pytest.approx(mpsnr(estimate[None], clean.double()[None]).item(), abs=1e-6)
        assert len(row["band_psnr"]) == 32 and row["mpsnr"] == pytest.approx(np.mean(row["band_psnr"]), abs=1e-3)
        assert {"mssim", "sam_deg"} <= set(row)
    recipe = results["recipe"]["hsi_bsn_0.05min"]
    assert recipe["steps"] == 3 and recipe["train_seconds"] > 0
    # Training validated on the very same noisy cube: its logged MPSNR is the script's.
    assert recipe["logged_val_mpsnr"] == pytest.approx(results["scores"]["hsi_bsn_0.05min"]["mpsnr"], abs=1e-4)


def test_bm4d_rows_know_the_true_sigma_and_estimate_it(run):
    if not BM4D:
        pytest.skip("bm4d is not installed")
    results = json.loads((run[0] / "results.json").read_text())
    assert results["sigmas"]["true_255"] == 50.0 and 0.8 < results["sigmas"]["estimated_255"] / 50 < 1.2
    for method in ("bm4d_true_sigma", "bm4d_estimated_sigma"):
        assert results["scores"][method]["mpsnr"] > results["scores"]["noisy"]["mpsnr"] + 5
        assert results["seconds"][method] > 0


def test_the_report_names_the_machine_and_holds_table_and_panel(run):
    out, done = run
    results = json.loads((out / "results.json").read_text())
    assert {"cpu_model", "avx512_bf16", "amx_bf16", "threads"} <= set(results["machine"])
    assert results["machine"]["threads"] == 1 and set(results["load_average"]) == {"before", "after"}
    table = (out / "table.md").read_text()
    assert rows(table) == len(results["methods"]) and "| hsi_bsn, 0.05 min |" in table
    assert "| method | MPSNR (dB) |" in done.stdout
    panel = np.asarray(Image.open(out / "panel.png"))
    magnified = 256 // 40
    assert panel.shape == (40 * magnified, (len(results["methods"]) + 1) * 8 * magnified, 3)  # methods | clean


def test_without_bm4d_its_rows_are_left_out_with_one_line(script, cube, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bm4d", None)  # import bm4d fails, as when it is not installed
    results = script.main([str(cube), *TINY, "--methods", "bm4d", "--out", str(tmp_path)])
    assert results["methods"] == ["noisy"] and "sigmas" not in results
    lines = [line for line in capsys.readouterr().err.splitlines() if "bm4d" in line]
    assert lines == ["bm4d is not installed (pip install 'denoise[classical]'): leaving BM4D out"]
    assert rows((tmp_path / "table.md").read_text()) == 1


def test_band_dependent_noise_gets_the_rms_of_its_realised_sigmas(script, cube, tmp_path):
    args = script.parse_args([str(cube), *TINY, "--noise", "hsi_noniid"])
    setup = [f"experiment={args.experiment}", *script.noise_overrides(args), *script.prepare_cube(args, tmp_path)]
    noisy, clean, noise = script.test_region(setup)
    assert isinstance(noise, NonIIDGaussianNoise)
    sigma, how, per_band = script.true_sigma(noise, noisy, clean)
    assert how.startswith("RMS") and sigma == pytest.approx(np.sqrt(np.mean(np.square(per_band))))
    # Each band's realised sigma is near one of the config's 10 / 30 / 50 / 70.
    assert all(min(abs(255 * s - level) for level in (10, 30, 50, 70)) < 8 for s in per_band)


@pytest.mark.parametrize(("arguments", "message"), [
    (["missing.mat"], "error: missing.mat: no such cube file"),
    (["{cube}", "--noise", "poisson"],
     "error: --noise=poisson: unknown; choose from hsi_gaussian, hsi_noniid, stripe, deadline, impulse, mixture"),
    (["{cube}", "--minutes", "2,x"], "error: --minutes=2,x: expected comma-separated minutes > 0, e.g. 2,5,10"),
    (["{cube}", "--minutes", "0"], "error: --minutes=0: expected comma-separated minutes > 0, e.g. 2,5,10"),
    (["{cube}", "--bands", "5:2"], "error: --bands=5:2: expected start:stop with 0 <= start < stop, e.g. 0:64"),
])
def test_bad_arguments_stop_with_one_line(script, tmp_path, arguments, message):
    placeholder = tmp_path / "cube.mat"
    placeholder.touch()
    with pytest.raises(SystemExit) as stopped:
        script.parse_args([a.format(cube=placeholder) for a in arguments])
    assert str(stopped.value) == message


def test_bad_arguments_print_one_line_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark_hsi.py"), str(tmp_path / "none.mat")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 1 and done.stderr.splitlines() == [f"error: {tmp_path / 'none.mat'}: no such cube file"]
