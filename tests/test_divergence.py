"""DivergenceGuard: a finite blow-up of the training loss goes back to the last good weights."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.utils.data import DataLoader, TensorDataset

from denoise.cli.errors import ONE_LINE_ERRORS
from denoise.errors import ConfigError
from denoise.lit.divergence import DivergenceGuard, TrainingDivergedError
from tests.conftest import compose_train


class Toy(L.LightningModule):
    """Fits w to 1 by SGD; ``corrupt(step)`` says whether to throw w far away at that step, before
    the loss (the loss shows it) or after it (only the next step's loss does)."""

    def __init__(self, corrupt=lambda step: False, after_loss: bool = False, noise: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(4))
        self.corrupt, self.after_loss, self.noise = corrupt, after_loss, noise

    def training_step(self, batch, batch_idx):
        if self.corrupt(self.global_step) and not self.after_loss:
            with torch.no_grad():
                self.w.add_(1e3)
        loss = (self.w - 1).square().mean() + 0.1
        if self.noise:
            loss = loss * (1 + self.noise * (2 * torch.rand(()) - 1))
        if self.corrupt(self.global_step) and self.after_loss:
            with torch.no_grad():
                self.w.add_(1e3)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit(module: Toy, guard: DivergenceGuard, steps: int, *others: L.Callback) -> L.Trainer:
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[*others, guard])
    trainer.fit(module, DataLoader(TensorDataset(torch.zeros(steps, 1)), batch_size=1))
    return trainer


def guard(**options) -> DivergenceGuard:
    return DivergenceGuard(**{"warmup": 5, "snapshot_every": 10, "patience": 3, **options})


def test_a_blow_up_goes_back_to_the_last_good_weights_and_training_goes_on(caplog):
    module, watch = Toy(corrupt=lambda step: step == 30), guard()
    with caplog.at_level(logging.WARNING, logger="denoise.lit.divergence"):
        trainer = fit(module, watch, 80)
    assert watch.rollbacks == 1 and trainer.global_step == 80
    assert (module.w - 1).abs().max() < 0.1  # trained on from the restored weights
    # The snapshot of step 30 was taken before the blow-up, but no loss had vouched for it yet.
    assert "Training diverged at step 33" in caplog.text and "restored from step 20" in caplog.text


def averaged_weights(ema: EMAWeightAveraging, trainer: L.Trainer, module: Toy) -> torch.Tensor:
    checkpoint = {"state_dict": {}}
    ema.on_save_checkpoint(trainer, module, checkpoint)  # where a checkpoint takes the average from
    return checkpoint["state_dict"]["w"]


@pytest.mark.parametrize("guarded_first", [False, True])  # the guard before or after the average's update
def test_a_rollback_takes_the_weight_average_back_too(guarded_first):
    def run(corrupt) -> tuple[torch.Tensor, DivergenceGuard]:
        ema, watch = EMAWeightAveraging(decay=0.99), guard()
        module = Toy(corrupt=corrupt)
        trainer = L.Trainer(accelerator="cpu", max_steps=60, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False,
                            callbacks=[watch, ema] if guarded_first else [ema, watch])
        trainer.fit(module, DataLoader(TensorDataset(torch.zeros(60, 1)), batch_size=1))
        # At the end of training the model holds the average (EMAWeightAveraging copies it in).
        assert torch.equal(averaged_weights(ema, trainer, module), module.w.detach())
        return module.w.detach(), watch

    clean_average, _ = run(lambda step: False)
    average, watch = run(lambda step: step == 30)
    assert watch.rollbacks == 1
    # Kept in the average, the three strike steps' weights (about 1e3) would move it by about 10 here.
    assert (average - clean_average).abs().max() < 0.5 and average.abs().max() < 1.5


def test_weights_are_trusted_only_once_the_next_loss_is_healthy(caplog):
    # Thrown away after the loss at step 19: the snapshot at step 20 holds bad weights that only
    # the next loss shows, so the rollback goes to the snapshot of step 10.
    module, watch = Toy(corrupt=lambda step: step == 19, after_loss=True), guard()
    with caplog.at_level(logging.WARNING, logger="denoise.lit.divergence"):
        fit(module, watch, 60)
    assert watch.rollbacks == 1 and "restored from step 10" in caplog.text
    assert (module.w - 1).abs().max() < 0.1


def test_a_run_that_keeps_diverging_stops_at_good_weights(caplog):
    module, watch = Toy(corrupt=lambda step: step >= 30), guard(max_rollbacks=2)
    with caplog.at_level(logging.WARNING, logger="denoise.lit.divergence"):
        trainer = fit(module, watch, 200)
    assert watch.rollbacks == 2 and trainer.global_step < 200
    assert (module.w - 1).abs().max() < 1  # the restored weights, not the thrown-away ones
    assert "rollback 2 of 2, so the run stops here" in caplog.text


def test_a_noisy_healthy_loss_is_left_alone():
    module, watch = Toy(noise=0.8), guard()
    fit(module, watch, 200)
    assert watch.rollbacks == 0 and len(watch.healthy) == 100


def test_a_blow_up_before_any_good_snapshot_is_an_error():
    # Thrown away after the first loss: the only snapshot holds bad weights and is never trusted.
    module, watch = Toy(corrupt=lambda step: step == 0, after_loss=True), guard(warmup=1)
    with pytest.raises(TrainingDivergedError, match="diverged at step 4 .* before any good snapshot; lower model.optimizer.lr"):
        fit(module, watch, 10)
    assert issubclass(TrainingDivergedError, ONE_LINE_ERRORS)  # the entry points print it as one line


@pytest.mark.parametrize(("options", "message"), [
    ({"factor": 1.0}, r"factor=1.0: expected a number > 1$"),
    ({"patience": 0}, r"patience=0: expected an integer >= 1"),
    ({"snapshot_every": 2.5}, r"snapshot_every=2.5: expected an integer >= 1"),
    ({"max_rollbacks": True}, r"max_rollbacks=True: expected an integer >= 1"),
])
def test_bad_settings_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=r"callbacks\.divergence_guard\." + message):
        DivergenceGuard(**options)


def test_the_default_callbacks_guard_every_run(tmp_path):
    cfg = compose_train(["callbacks=default"], tmp_path)
    assert isinstance(instantiate(cfg.callbacks.divergence_guard), DivergenceGuard)
