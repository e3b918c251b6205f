"""A training run that diverges goes back to its last good weights instead of delivering garbage.

A network trained at a high constant learning rate can blow up after thousands of good steps:
the photos student (AdamW at 2e-3, bf16) once went from a loss of 0.01 to 0.5 at step 3,249 of
a 30-minute run, 2.6 x 10^4 twenty steps later and 4 x 10^5 fifty steps later, and its photos
came back at 6 dB with exit status 0.
Non-finite losses stop a run already (``NonFiniteLossError``); a finite blow-up does not.

``DivergenceGuard`` watches the training loss. A loss above ``factor`` times the median of the
last ``window`` healthy losses is a strike; ``patience`` strikes in a row mean divergence. Then
the weights and the optimizer's state go back to a snapshot that is known to be good, and
training goes on from there (the learning-rate schedule keeps its step). After ``max_rollbacks``
rollbacks the run stops with the good weights, which the last checkpoint then holds.

A snapshot is taken every ``snapshot_every`` steps, after the optimizer step; it is trusted only
once the next step's loss, which those weights produced, is healthy too. It holds the average of a
weight-averaging callback too (``callbacks=ema``): the strike steps' weights are in the average by
the time the guard acts, and a rollback that kept them would deliver them in every checkpoint. The
average is copied and put back through the hooks Lightning saves and resumes it with
(``on_save_checkpoint`` / ``on_load_checkpoint``), not through its private attributes.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Mapping
from typing import Annotated

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from lightning_utilities.core.apply_func import apply_to_collection

from denoise.rules import checked, integer, number_above

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """The loss blew up before any snapshot was trusted: there are no good weights to go back to."""


class DivergenceGuard(L.Callback):
    @checked("callbacks.divergence_guard.")
    def __init__(
        self,
        factor: Annotated[float, number_above(1)] = 10.0,  # a loss this many times the recent median is a strike
        patience: Annotated[int, integer(1)] = 3,  # strikes in a row that mean divergence
        window: Annotated[int, integer(1)] = 100,  # healthy losses the median is taken over
        warmup: Annotated[int, integer(1)] = 20,  # healthy losses needed before anything counts as a strike
        snapshot_every: Annotated[int, integer(1)] = 100,  # steps between snapshots of weights and optimizer
        max_rollbacks: Annotated[int, integer(1)] = 3,  # then stop the run, at the good weights
    ):
        self.factor, self.patience, self.warmup = float(factor), patience, min(warmup, window)
        self.snapshot_every, self.max_rollbacks = snapshot_every, max_rollbacks
        self.healthy: deque[float] = deque(maxlen=window)
        self.strikes = 0
        self.rollbacks = 0
        self.candidate: dict | None = None  # the newest snapshot, not yet vouched for
        self.trusted: dict | None = None  # a snapshot whose weights then gave a healthy loss

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, Mapping) else outputs
        if not isinstance(loss, torch.Tensor):
            return  # a step that returned no loss (manual optimisation, a skipped batch)
        # The mean over ranks: every rank takes the same decision and restores the same weights.
        value = float(trainer.strategy.reduce(loss.detach().float(), reduce_op="mean"))
        if len(self.healthy) >= self.warmup and value > self.factor * statistics.median(self.healthy):
            self.strikes += 1
            if self.strikes >= self.patience:
                self.roll_back(trainer, pl_module, value)
            return
        self.strikes = 0
        self.healthy.append(value)
        if self.candidate is not None:
            self.trusted, self.candidate = self.candidate, None
        if trainer.global_step % self.snapshot_every == 0 or self.trusted is None:
            self.candidate = snapshot(trainer, pl_module)

    def roll_back(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: float) -> None:
        self.strikes, self.candidate = 0, None
        median = statistics.median(self.healthy)
        when = f"at step {trainer.global_step} (loss {loss:.3g}, {loss / median:.0f} times the recent median {median:.3g})"
        if self.trusted is None:
            raise TrainingDivergedError(f"training diverged {when} before any good snapshot; lower model.optimizer.lr")
        pl_module.load_state_dict(self.trusted["model"])
        for optimizer, state in zip(trainer.optimizers, self.trusted["optimizers"]):
            optimizer.load_state_dict(state)  # moves the state back to the parameters' device
        for callback, average in zip(averaging_callbacks(trainer), self.trusted["averages"]):
            restore_average(trainer, pl_module, callback, average, self.trusted["model"])
        self.rollbacks += 1
        message = f"Training diverged {when}: weights and optimizer state restored from step {self.trusted['step']}"
        if self.rollbacks >= self.max_rollbacks:
            trainer.should_stop = True
            log.warning(f"{message}; rollback {self.rollbacks} of {self.max_rollbacks}, so the run stops here "
                        f"(lower model.optimizer.lr)")
        else:
            log.warning(f"{message} (rollback {self.rollbacks} of {self.max_rollbacks})")


def snapshot(trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
    """Copies of the module's weights, the optimizers' states and the weight averages at the current
    step, in CPU memory: a GPU run keeps its memory for training."""
    return {
        "step": trainer.global_step,
        "model": cpu_copy(pl_module.state_dict()),
        "optimizers": [cpu_copy(optimizer.state_dict()) for optimizer in trainer.optimizers],
        "averages": [average_of(trainer, pl_module, callback) for callback in averaging_callbacks(trainer)],
    }


def cpu_copy(collection):
    return apply_to_collection(collection, torch.Tensor, lambda tensor: tensor.detach().to("cpu", copy=True))


def averaging_callbacks(trainer: L.Trainer) -> list[WeightAveraging]:
    return [callback for callback in trainer.callbacks if isinstance(callback, WeightAveraging)]


def average_of(trainer: L.Trainer, pl_module: L.LightningModule, callback: WeightAveraging) -> dict | None:
    """The callback's average as a checkpoint holds it (``state_dict``: the averaged weights;
    ``averaging_state``: its count), with the callback's own state; None before it has one."""
    checkpoint: dict = {"state_dict": {}}
    callback.on_save_checkpoint(trainer, pl_module, checkpoint)
    if "averaging_state" not in checkpoint:
        return None
    return cpu_copy({"state_dict": checkpoint["state_dict"], "averaging_state": checkpoint["averaging_state"],
                     "callback": callback.state_dict()})


def restore_average(trainer: L.Trainer, pl_module: L.LightningModule, callback: WeightAveraging,
                    average: dict | None, model: dict) -> None:
    if average is None:
        return
    checkpoint = {"state_dict": average["state_dict"], "averaging_state": average["averaging_state"],
                  "current_model_state": model}
    # The hook logs that it initialises the model from a checkpoint: true of resuming, not of this.
    lightning_info = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = lightning_info.level
    lightning_info.setLevel(logging.WARNING)
    try:
        callback.on_load_checkpoint(trainer, pl_module, checkpoint)
    finally:
        lightning_info.setLevel(level)
    callback.load_state_dict(average["callback"])
