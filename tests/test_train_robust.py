"""Long runs: exact resume after a kill, atomic checkpoints, NaN guard, EMA, bf16, loggers."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from denoise.cli.train import resolve_ckpt_path, split_global_batch, train
from denoise.data.datamodules.demo import DemoDataModule
from denoise.errors import ConfigError
from denoise.lit import load_model
from denoise.lit.checkpointing import AtomicCheckpointIO
from denoise.lit.loggers import wandb_account_configured
from tests.conftest import compose_train

# A couple of steps on tiny crops and a small validation image: seconds per run on a 2-core CPU.
TINY = ["debug=fast", "trainer.max_steps=2", "trainer.val_check_interval=2", "data.val_size=64",
        "data.crop_size=64", "data.batch_size=2", "data.epoch_length=32", "logger=csv"]


def run(overrides: list[str], run_dir: Path) -> dict[str, float]:
    return train(compose_train([*TINY, *overrides], run_dir))


def test_last_checkpoint_holds_the_final_weights_when_the_last_validation_is_not_the_best(tmp_path):
    falling = ["+callbacks.falling._target_=tests.train_helpers.FallingPSNR"]
    run(["trainer.max_steps=4", "trainer.val_check_interval=2", *falling], tmp_path)
    checkpoints = tmp_path / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 4
    (best,) = checkpoints.glob("best_*.ckpt")
    assert torch.load(best, map_location="cpu", weights_only=False)["global_step"] == 2


def as_saved_by_earlier_versions(path: Path) -> None:
    """Earlier versions kept the data position as checkpoint["rng_states"], not in the datamodule's entry."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    checkpoint["rng_states"] = checkpoint.pop("DemoDataModule")["rng_states"]
    torch.save(checkpoint, path)


@pytest.mark.parametrize("saved_by", ["this version", "an earlier version"])
def test_resume_after_a_kill_continues_exactly(tmp_path, saved_by):
    six = ["trainer.max_steps=6", "trainer.val_check_interval=3"]
    run(six, tmp_path / "straight")
    killed = tmp_path / "killed"
    kill = ["+callbacks.kill._target_=tests.train_helpers.KillAtStep", "+callbacks.kill.step=4"]
    with pytest.raises(SystemExit) as stop:
        run([*six, *kill], killed)
    assert stop.value.code == 143
    last = killed / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 4
    if saved_by == "an earlier version":
        as_saved_by_earlier_versions(last)

    run([*six, "ckpt_path=last"], killed)  # `last` = <this run dir>/checkpoints/last.ckpt
    straight, resumed = (torch.load(p / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
                         for p in (tmp_path / "straight", killed))
    assert straight["global_step"] == resumed["global_step"] == 6
    for name, value in straight["state_dict"].items():  # same data, same optimiser state, same steps
        assert torch.equal(value, resumed["state_dict"][name]), name
    assert straight["lr_schedulers"] == resumed["lr_schedulers"]
    rows = list(csv.DictReader(open(killed / "csv" / "metrics.csv")))
    assert sorted({int(r["step"]) for r in rows if r.get("train/loss")}) == list(range(6))  # the curve continues


def test_ckpt_path_last_without_a_checkpoint_says_where_to_point(tmp_path):
    with pytest.raises(ConfigError, match=r"ckpt_path=last: no checkpoint at .*hydra.run.dir="):
        resolve_ckpt_path("last", tmp_path)
    with pytest.raises(ConfigError, match="no such checkpoint file"):
        resolve_ckpt_path(str(tmp_path / "missing.ckpt"), tmp_path)


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, target)

    def killed_mid_write(obj, file, *args, **kwargs):
        file.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process dies while saving

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False)["step"] == 1  # the old checkpoint is whole
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # and no temporary file is left behind
    cfg = compose_train(TINY, tmp_path / "run")
    assert isinstance(instantiate(cfg.trainer).strategy.checkpoint_io, AtomicCheckpointIO)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    nan = ["trainer.max_steps=4", "trainer.val_check_interval=1",
           "+callbacks.nan._target_=tests.train_helpers.NaNAtStep", "+callbacks.nan.step=2"]
    with pytest.raises(Exception, match="training loss became nan at step 2"):
        run(nan, tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())




@pytest.mark.parametrize(("steps", "every", "validated"), [(3, 2, [2, 3]), (4, 2, [2, 4]), (3, 200, [3])])
def test_every_run_ends_with_one_validation(tmp_path, steps, every, validated):
    """The last steps after the last periodic validation are validated once, never twice."""
    seen = tmp_path / "validations.txt"
    metrics = run([f"trainer.max_steps={steps}", f"trainer.val_check_interval={every}",
                   "+callbacks.seen._target_=tests.train_helpers.RecordValidationSteps", f"+callbacks.seen.path={seen}"],
                  tmp_path)
    assert [int(line) for line in seen.read_text().split()] == validated
    assert {"val/psnr", "val/psnr_best"} <= set(metrics)


def test_ema_weights_validate_and_are_what_checkpoints_load(tmp_path):
    seen = tmp_path / "validation_weights.pt"
    run(["callbacks=ema", "+callbacks.seen._target_=tests.train_helpers.SaveValidationWeights",
         f"+callbacks.seen.path={seen}"], tmp_path)
    path = tmp_path / "checkpoints" / "last.ckpt"
    state = torch.load(path, map_location="cpu", weights_only=False)
    assert "current_model_state" in state  # the raw weights, for resuming
    ema, raw = state["state_dict"], state["current_model_state"]
    assert not torch.equal(ema["net.head.weight"], raw["net.head.weight"])
    validated = torch.load(seen, weights_only=False)  # validation (step 2) ran with the EMA weights
    assert torch.equal(validated["net.head.weight"], ema["net.head.weight"])
    model = load_model(path)  # what eval.py / predict.py get
    assert torch.equal(model.net.head.weight, ema["net.head.weight"])


def test_bf16_mixed_precision_on_cpu(tmp_path):
    metrics = run(["trainer.precision=bf16-mixed", "trainer.accelerator=cpu"], tmp_path)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    assert "val/psnr" in metrics


def test_tensorboard_wandb_and_csv_together(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    run(["logger=many"], tmp_path)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert list((tmp_path / "wandb").glob("offline-run-*"))
    assert (tmp_path / "csv" / "metrics.csv").is_file()
    import wandb

    assert wandb.run is None  # closed after the job: the next job of a sweep gets its own run


def test_wandb_is_online_only_with_an_account(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert not wandb_account_configured()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    assert wandb_account_configured()
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_account_configured()


def test_global_batch_is_split_over_processes_or_refused():
    class Trainer:
        num_nodes, num_devices = 2, 2

    data = DemoDataModule(batch_size=8)
    split_global_batch(data, Trainer())
    assert data.batch_size == 2
    data = DemoDataModule(batch_size=6)
    with pytest.raises(ConfigError, match=r"data.batch_size=6 .* does not divide among 4 processes"):
        split_global_batch(data, Trainer())


def test_every_trainer_preset_composes(tmp_path):
    cfg = compose_train(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2", "hydra/launcher=slurm"], tmp_path)
    assert cfg.trainer.strategy == "ddp"
    assert (cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.nodes) == (4, 2)
