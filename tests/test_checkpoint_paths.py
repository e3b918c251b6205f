"""One place says where a run's last.ckpt is: the callbacks that write it and ckpt_path=last agree."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from denoise.cli.train import resolve_ckpt_path
from denoise.lit import LastCheckpoint, Preemption
from denoise.lit.checkpointing import last_checkpoint_path
from tests.conftest import compose_train


def test_last_checkpoint_path_is_under_the_run_directory(tmp_path):
    assert last_checkpoint_path(tmp_path) == tmp_path / "checkpoints" / "last.ckpt"
    assert last_checkpoint_path(str(tmp_path)) == last_checkpoint_path(tmp_path)


def test_the_configured_callbacks_write_the_file_ckpt_path_last_resumes(tmp_path):
    cfg = compose_train([], tmp_path)
    callbacks = [instantiate(entry) for entry in cfg.callbacks.values() if entry and "_target_" in entry]
    expected = last_checkpoint_path(cfg.paths.output_dir)
    (last,) = [callback for callback in callbacks if isinstance(callback, LastCheckpoint)]
    assert Path(last.path) == expected
    assert Path(Preemption.last_path(SimpleNamespace(callbacks=callbacks, checkpoint_callback=None))) == expected

    expected.parent.mkdir(parents=True)
    expected.touch()
    assert resolve_ckpt_path("last", tmp_path) == str(expected)


def test_preemption_without_last_checkpoint_saves_beside_the_best_checkpoints(tmp_path):
    best = ModelCheckpoint(dirpath=tmp_path / "checkpoints")
    trainer = SimpleNamespace(callbacks=[best], checkpoint_callback=best)
    assert Path(Preemption.last_path(trainer)) == last_checkpoint_path(tmp_path)
    assert Preemption.last_path(SimpleNamespace(callbacks=[], checkpoint_callback=None)) is None
