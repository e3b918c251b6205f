"""Callbacks the training tests inject with `+callbacks.<name>._target_=tests.train_helpers.<Class>`."""

from __future__ import annotations

import os
import signal

import lightning as L
import torch


class KillAtStep(L.Callback):
    """Send this process ``signal`` once ``step`` optimiser steps are done (a pre-emption)."""

    def __init__(self, step: int, signal: str = "SIGTERM"):
        self.step, self.signal = step, signal

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class NaNAtStep(L.Callback):
    """Poison the training input from ``step`` on, so the loss becomes NaN."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            batch["noisy"].fill_(float("nan"))


def weights(path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


class FailJob(L.Callback):
    """Raise at fit start in the sweep job whose number is ``fail``: a crashing trial."""

    def __init__(self, job: int, fail: int):
        self.job, self.fail = int(job), int(fail)

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.job == self.fail:
            raise RuntimeError(f"deliberate failure of sweep job {self.job}")


class SaveValidationWeights(L.Callback):
    """Write the weights the module holds during validation to ``path`` (placed after the EMA callback)."""

    def __init__(self, path: str):
        self.path = path

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        torch.save({k: v.detach().clone() for k, v in pl_module.state_dict().items()}, self.path)


class RecordValidationSteps(L.Callback):
    """Append the global step of every validation to the text file ``path``, one per line."""

    def __init__(self, path: str):
        self.path = path

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        with open(self.path, "a") as f:
            f.write(f"{trainer.global_step}\n")


class FallingPSNR(L.Callback):
    """The module logs a validation PSNR that falls at every validation: no later one is the best."""

    def setup(self, trainer, pl_module, stage) -> None:
        log = pl_module.log

        def falling(name, value, *args, **kwargs):
            if name == "val/psnr":
                value = torch.tensor(-float(trainer.global_step))
            return log(name, value, *args, **kwargs)

        pl_module.log = falling


class KillDuringValidation(L.Callback):
    """Send this process SIGTERM after the first batch of the validation at optimiser step ``step``."""

    def __init__(self, step: int):
        self.step = step

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking and trainer.global_step == self.step and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
