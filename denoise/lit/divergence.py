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
once the next step's loss, which those weights produced, is healthy too.
"""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Mapping
from typing import Annotated

import lightning as L
import torch
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
        self.rollbacks += 1
        message = f"Training diverged {when}: weights and optimizer state restored from step {self.trusted['step']}"
        if self.rollbacks >= self.max_rollbacks:
            trainer.should_stop = True
            log.warning(f"{message}; rollback {self.rollbacks} of {self.max_rollbacks}, so the run stops here "
                        f"(lower model.optimizer.lr)")
        else:
            log.warning(f"{message} (rollback {self.rollbacks} of {self.max_rollbacks})")


def snapshot(trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
    """Copies of the module's weights and the optimizers' states at the current step, in CPU memory:
    a GPU run keeps its memory for training."""
    def to_cpu(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.detach().to("cpu", copy=True)

    return {
        "step": trainer.global_step,
        "model": apply_to_collection(pl_module.state_dict(), torch.Tensor, to_cpu),
        "optimizers": [apply_to_collection(optimizer.state_dict(), torch.Tensor, to_cpu)
                       for optimizer in trainer.optimizers],
    }
