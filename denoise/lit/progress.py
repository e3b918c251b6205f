"""A training progress bar of steps, the train loss and the time left, instead of epochs.

Training here ends at ``trainer.max_steps`` or ``trainer.max_time`` (``max_epochs=-1``), so
Lightning's own bar reads "Epoch 7/-2". This one reads ``step 420/800 | loss 0.0213 | 1:02 left``,
or ``step 420 | loss 0.0213 | 6:31 left of 10:00 budget`` when ``trainer.max_time`` ends the run.

``photos.py`` runs each of its stages inside :func:`stage`: the line then starts with the stage's
name, counts down the whole photos budget, and is replaced by the next stage's (one line for the
whole run); the stage records the steps it trained for the final summary.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Timer
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm, TQDMProgressBar
from typing_extensions import override


@dataclass
class Stage:
    """A named part of a longer run (photos.py's teacher / student / denoise)."""

    name: str
    deadline: float | None = None  # time.monotonic() at which the whole run's budget ends
    budget: float | None = None  # the whole run's budget in seconds
    steps: int = 0  # training steps reached, set when the stage's training ends


_current: Stage | None = None


@contextmanager
def stage(name: str, deadline: float | None = None, budget: float | None = None) -> Iterator[Stage]:
    """Progress bars opened inside belong to the stage ``name`` of a run budgeted ``budget``
    seconds, ending at ``deadline`` (``time.monotonic()``)."""
    global _current
    previous, _current = _current, Stage(name, deadline, budget)
    try:
        yield _current
    finally:
        _current = previous


def current_stage() -> Stage | None:
    return _current


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    minutes, secs = divmod(max(0, round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StepProgressBar(TQDMProgressBar):
    """One line for the whole fit: the step (of ``max_steps`` when set), the progress-bar metrics
    (the train loss) and the time left. Validation keeps Lightning's own (transient) bar."""

    def __init__(self, refresh_rate: int = 1, process_position: int = 0):
        super().__init__(refresh_rate=refresh_rate, process_position=process_position)
        self._started = 0.0
        self._first_step = 0

    @override
    def init_train_tqdm(self) -> Tqdm:
        # The description carries everything (tqdm's own rate would count batches, not steps); a
        # stage's line gives way to the next stage's.
        return Tqdm(desc="", position=2 * self.process_position, disable=self.is_disabled,
                    leave=current_stage() is None, dynamic_ncols=True, file=sys.stdout, bar_format="{desc}")

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._started, self._first_step = time.monotonic(), trainer.global_step
        self._show(trainer, pl_module)

    @override
    def on_train_epoch_start(self, trainer: L.Trainer, *_: Any) -> None:
        """No per-epoch bar: an epoch is only the length of the data loader here."""

    @override
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: Any) -> None:
        if self._should_update(trainer.global_step, max(trainer.max_steps, 0)):
            self._show(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The line stays open across epochs."""

    @override
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._show(trainer, pl_module)
        if current_stage() is not None:
            current_stage().steps = trainer.global_step
        super().on_train_end(trainer, pl_module)

    def _show(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        bar = self.train_progress_bar
        if bar.disable:
            return
        bar.n = trainer.global_step
        bar.set_description_str(self.describe(trainer, pl_module), refresh=True)

    def describe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """``[stage ]step N[/max] | loss x | time left``."""
        named = current_stage()
        steps = f"step {trainer.global_step}" + (f"/{trainer.max_steps}" if trainer.max_steps > 0 else "")
        parts = [f"{named.name} {steps}" if named else steps]
        for name, value in self.get_metrics(trainer, pl_module).items():
            if name != "v_num":
                shown = f"{value:.4g}" if isinstance(value, float) else value
                parts.append(f"{name.removeprefix('train/')} {shown}")
        left = self.time_left(trainer)
        if left:
            parts.append(left)
        return " | ".join(parts)

    def time_left(self, trainer: L.Trainer) -> str | None:
        """Of a photos run's whole budget; else of ``trainer.max_time``; else estimated from the
        steps per second so far and ``trainer.max_steps`` (whichever ends the run first)."""
        named = current_stage()
        if named is not None and named.deadline is not None:
            return f"{clock(named.deadline - time.monotonic())} left of {clock(named.budget)} budget"
        estimates = []
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        remaining = timer.time_remaining() if timer is not None else None
        if remaining is not None:
            estimates.append((remaining, f" of {clock(remaining + timer.time_elapsed())} budget"))
        done = trainer.global_step - self._first_step
        if trainer.max_steps > 0 and done > 0:
            per_step = (time.monotonic() - self._started) / done
            estimates.append((per_step * (trainer.max_steps - trainer.global_step), ""))
        if not estimates:
            return None
        seconds, budget = min(estimates)
        return f"{clock(seconds)} left{budget}"
