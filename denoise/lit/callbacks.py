"""Callbacks: people look at denoising, they do not only read it."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from PIL import Image

from denoise.lit.base import DenoisingModule
from denoise.lit.checkpointing import last_checkpoint_in
from denoise.lit.panels import panel_image


class ValidationPanels(L.Callback):
    """After each validation, write noisy | denoised | clean of the first image to ``dirpath``."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self.latest: Path | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        panel = pl_module.panel if isinstance(pl_module, DenoisingModule) else None
        if panel is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        image = panel_image(*panel)
        self.latest = self.dirpath / "latest.png"
        image.save(self.dirpath / f"step_{trainer.global_step:07d}.png")
        image.save(self.latest)
        log_panel_to_loggers(trainer, image)


def log_panel_to_loggers(trainer: L.Trainer, image: Image.Image) -> None:
    """Send a validation panel to the image-capable loggers (W&B, TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key="val/panel", images=[image], caption=["noisy | denoised | clean"],
                             step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            array = np.asarray(image)
            logger.experiment.add_image("val/panel", array, trainer.global_step, dataformats="HWC")


class FinalValidation(L.Callback):
    """Validate after the last training step when the last periodic validation is behind it.

    Lightning validates every ``val_check_interval`` steps; when ``max_steps`` is not a multiple
    (or is shorter than the interval), the run would end without final metrics and without a
    checkpoint of its final weights. Asking the trainer to stop at the last step makes its loop
    validate once more before it ends (as it does for early stopping); when the last step is a
    validation step anyway, that is the one validation.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.max_steps is not None and 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True


class LastCheckpoint(L.Callback):
    """Keep ``<dirpath>/last.ckpt`` at the newest weights: after every validation and at the end of
    the run (``max_steps`` or ``max_time``); without validation data, at every training-epoch end.

    Lightning's ``ModelCheckpoint(save_last=True)`` writes ``last.ckpt`` only at a step where it
    also saves a top-k checkpoint, so a validation that is not the best, or a run without
    validation data (photos without references), would leave it at an older step or never write
    it. Saving at the epoch end rather than in ``on_train_end`` keeps EMA's raw weights apart: the
    EMA callback copies its average into the model when training ends.
    """

    def __init__(self, dirpath: str):
        self.path = str(last_checkpoint_in(dirpath))
        self._saved_step = -1

    def save(self, trainer: L.Trainer) -> None:
        if trainer.state.fn != "fit" or trainer.sanity_checking or trainer.global_step == self._saved_step:
            return
        # Every rank calls it and only rank 0 writes; the full state, so that a run can resume.
        trainer.save_checkpoint(self.path, weights_only=False)
        self._saved_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        ending = trainer.should_stop or 0 < trainer.max_steps <= trainer.global_step
        if ending or not sum(trainer.num_val_batches):
            self.save(trainer)


class Preemption(L.Callback):
    """Save ``last.ckpt`` and stop cleanly on SIGTERM or SIGUSR1 (SLURM pre-emption, ``scancel``, kill).

    Lightning already turns SIGTERM into a ``SIGTERMException`` after the current batch (and, under
    SLURM with auto-requeue, SIGUSR1 into an HPC checkpoint + requeue). This callback makes sure the
    run's own ``last.ckpt`` holds the step reached, so ``ckpt_path=last`` resumes from it, and
    handles SIGUSR1 outside SLURM's auto-requeue the same way.
    """

    def __init__(self, signals: tuple[str, ...] = ("SIGUSR1",)):
        self.signal_names = tuple(signals)
        self.received: str | None = None
        self._previous: dict[int, object] = {}
        self.saved_path: str | None = None

    def _handler(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        previous = self._previous.get(signum)
        if callable(previous):
            previous(signum, frame)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or threading.current_thread() is not threading.main_thread():
            return
        for name in self.signal_names:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            if current in (None, signal.SIG_DFL, signal.SIG_IGN):  # SLURM auto-requeue may own it
                self._previous[signum] = current
                signal.signal(signum, self._handler)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, previous in self._previous.items():
            if threading.current_thread() is threading.main_thread():
                signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    @staticmethod
    def last_path(trainer: L.Trainer) -> str | None:
        """The run's ``last.ckpt``: the one ``LastCheckpoint`` keeps, else the one beside the
        best checkpoints; None when the run writes no checkpoints."""
        for callback in trainer.callbacks:
            if isinstance(callback, LastCheckpoint):
                return callback.path
        checkpoint = trainer.checkpoint_callback
        if checkpoint is None or checkpoint.dirpath is None:
            return None
        return str(last_checkpoint_in(checkpoint.dirpath))

    def save(self, trainer: L.Trainer, reason: str) -> None:
        path = self.last_path(trainer)
        if path is None or self.saved_path == path and trainer.global_step == self._saved_step:
            return
        trainer.save_checkpoint(path, weights_only=False)
        self.saved_path, self._saved_step = path, trainer.global_step
        rank_zero_info(f"{reason}: saved {path} at step {trainer.global_step}; resume with ckpt_path={path}")

    _saved_step = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.received_sigterm or self.received:
            self.save(trainer, f"received {self.received or 'SIGTERM'}")
            trainer.should_stop = True

    _validating = False

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._validating = True

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._validating = False

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Lightning stops a validation that a SIGTERM interrupts: save the training weights then.
        if isinstance(exception, SIGTERMException) and trainer.state.fn == "fit":
            if self._validating:
                end_interrupted_validation(trainer, pl_module)
                self._validating = False
            self.save(trainer, "received SIGTERM")


def end_interrupted_validation(trainer: L.Trainer, pl_module: L.LightningModule) -> None:
    """End, for the weight-averaging callbacks, a validation that an exception stopped.

    ``WeightAveraging`` (EMA) swaps the averaged weights into the model when a validation epoch
    starts and swaps them back out when it ends; Lightning skips that end when SIGTERM stops the
    validation, so the model would hold the averaged weights where the training weights belong.
    Its public ``on_validation_epoch_end`` hook does the swap back (and nothing when it holds no
    average): ``tests/test_ema.py`` checks that contract against the installed Lightning.
    """
    for callback in trainer.callbacks:
        if isinstance(callback, WeightAveraging):
            callback.on_validation_epoch_end(trainer, pl_module)
