"""Sweeps and launchers: a grid multirun, an Optuna search with a failing trial, submitit, 2-process DDP."""

from __future__ import annotations

import csv

import pytest
import yaml

from tests.test_train import run_train

TINY = ["debug=fast", "trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_size=64",
        "data.crop_size=64", "data.batch_size=2", "data.epoch_length=32"]


def run_multirun(args: list[str], sweep_dir, timeout: int = 600):
    return run_train(["-m", *TINY, *args, f"hydra.sweep.dir={sweep_dir}"], sweep_dir / "unused", timeout=timeout)


@pytest.mark.slow
def test_grid_multirun_gives_each_job_its_own_folder(tmp_path):
    result = run_multirun(["seed=1,2"], tmp_path / "sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    for job in ("0", "1"):
        assert (tmp_path / "sweep" / job / "checkpoints" / "last.ckpt").is_file()
        assert (tmp_path / "sweep" / job / ".hydra" / "overrides.yaml").is_file()


@pytest.mark.slow
def test_optuna_search_records_a_failed_trial_and_goes_on(tmp_path):
    failing = ["+callbacks.fail._target_=tests.train_helpers.FailJob", "+callbacks.fail.job=${hydra:job.num}",
               "+callbacks.fail.fail=0"]
    result = run_multirun(["hparams_search=demo_optuna", "hydra.sweeper.n_trials=2", *failing], tmp_path / "sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "deliberate failure of sweep job 0" in output and "Failed experiment" in output
    results = yaml.safe_load(open(tmp_path / "sweep" / "optimization_results.yaml"))
    assert results["best_value"] > 0  # the second trial's val/psnr_best
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "1" / "csv" / "metrics.csv")))
    assert any(row.get("val/psnr_best") for row in rows)


@pytest.mark.slow
def test_optuna_search_shorter_than_a_validation_interval_has_a_result(tmp_path):
    """Trials of 3 steps never reach val_check_interval: each still ends with its objective."""
    result = run_multirun(["hparams_search=demo_optuna", "hydra.sweeper.n_trials=2", "trainer.max_steps=3",
                           "trainer.val_check_interval=200"], tmp_path / "sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Failed experiment" not in result.stdout + result.stderr
    results = yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())
    assert results["best_value"] > 0


@pytest.mark.slow
def test_optuna_search_whose_trials_all_fail_ends_with_one_line(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_multirun(["hparams_search=demo_optuna", "hydra.sweeper.n_trials=2", "model.train_pd.pad=-1"], sweep)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: all 2 trial(s) of the sweep failed, so it has no best value; the trials' logs: "
                    f"{sweep / '0' / 'train.log'}, {sweep / '1' / 'train.log'}")
    assert "model.train_pd.pad=-1: expected an integer >= 0" in (sweep / "0" / "train.log").read_text()


@pytest.mark.slow
def test_submitit_local_launcher(tmp_path):
    result = run_multirun(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"], tmp_path / "sweep")
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", *TINY], run_dir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Global batch 2 = 2 processes x 1" in output
    assert "GLOBAL_RANK: 1" in output
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
