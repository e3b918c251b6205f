"""Training through Hydra: configs compose, runs honour the run dir, checkpoints rebuild the model."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from denoise.cli.train import train
from denoise.lit import BlindSpotModule
from tests.conftest import CONFIGS, compose_train, run_entry

EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))
FAST = ["debug=fast", "logger=csv"]


def run_train(args: list[str], run_dir: Path, env: dict | None = None, timeout: int = 600):
    return run_entry("train.py", args, run_dir, env, timeout)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes(experiment, tmp_path):
    cfg = compose_train([f"experiment={experiment}"], tmp_path)
    assert (cfg.model.student if experiment.endswith("distill") else cfg.model.net)._target_
    assert cfg.trainer.max_steps > 0 or cfg.trainer.get("max_time")  # a length in steps or wall-clock time
    assert cfg.callbacks.model_checkpoint.dirpath == f"{tmp_path}/checkpoints"


def test_sidd_recipe_is_the_paper_recipe(tmp_path):
    cfg = compose_train(["experiment=sidd_bsn"], tmp_path)
    assert cfg.model.net._target_ == "denoise.nets.TBSN" and cfg.model.net.dim == 48
    assert (cfg.data.crop_size, cfg.data.batch_size, cfg.data.augment) == (640, 4, False)
    assert dict(cfg.model.train_pd) == {"factor": 5, "layout": "batch", "pad": 0, "keep": "first"}
    assert (cfg.model.inference.pd_factor, cfg.model.inference.r3_passes, cfg.model.inference.r3_p) == (2, 8, 0.16)
    assert (cfg.model.optimizer.lr, cfg.model.optimizer.weight_decay) == (3e-4, 0.01)
    assert cfg.model.optimizer._target_ == "torch.optim.AdamW"
    assert (cfg.trainer.max_steps, cfg.trainer.val_check_interval) == (100_000, 20_000)
    assert list(cfg.model.scheduler.milestones) == [0.4, 0.8]


def test_scheduler_milestones_follow_max_steps(tmp_path):
    cfg = compose_train(["trainer.max_steps=50", "model.scheduler.milestones=[0.4,0.8]"], tmp_path)
    model = instantiate(cfg.model)
    model.trainer = type("T", (), {"max_steps": 50, "callbacks": []})()  # no max_time: steps alone
    factor = model.configure_optimizers()["lr_scheduler"]["scheduler"].lr_lambdas[0]
    # The learning rate drops x0.1 at steps 20 and 40, and only there.
    assert [factor(step) for step in (0, 19, 20, 39, 40, 50)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_model_net_can_be_chosen_from_the_command_line(tmp_path):
    cfg = compose_train(["model/net=dbsn_small", "model.net.form=literal"], tmp_path)
    net = instantiate(cfg.model).net
    assert type(net).__name__ == "DBSN" and net.form == "literal"


def test_train_py_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(FAST, run_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"Run directory: {run_dir}" in output
    assert "Validation PSNR: noisy" in output
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "checkpoints").glob("best_*.ckpt"))
    assert (run_dir / "panels" / "latest.png").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    assert any(row.get("val/psnr") for row in rows) and any(row.get("train/loss") for row in rows)
    assert any(row.get("val/psnr_best") for row in rows)

    # The checkpoint alone rebuilds the model (no config needed).
    model = BlindSpotModule.load_from_checkpoint(run_dir / "checkpoints" / "last.ckpt", map_location="cpu")
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert torch.equal(model.net.head.weight, state["state_dict"]["net.head.weight"])


def test_seed_zero_is_honoured(tmp_path):
    losses = []
    for attempt in range(2):
        cfg = compose_train([*FAST, "seed=0", "logger=none", "callbacks=none"], tmp_path / str(attempt))
        losses.append(train(cfg)["train/loss"])
    assert losses[0] == losses[1]


def test_no_logger_with_the_default_callbacks_still_saves_checkpoints(tmp_path):
    cfg = compose_train(["debug=fast", "logger=none"], tmp_path)
    train(cfg)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_sidd_without_data_fails_with_one_line(tmp_path):
    result = run_train(["experiment=sidd_bsn", "data.root=/nonexistent/SIDD"], tmp_path / "run", timeout=300)
    assert result.returncode == 1
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "/nonexistent/SIDD" in lines[-1]
    assert "Traceback" not in result.stderr


def test_wandb_logger_works_offline_without_an_account(tmp_path):
    run_dir = tmp_path / "run"
    env = {"WANDB_API_KEY": "", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = run_train(["debug=fast", "logger=wandb"], run_dir, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((run_dir / "wandb").glob("offline-run-*"))
