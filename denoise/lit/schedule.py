"""The learning-rate schedule: drops at fractions of the run, whether the run is counted in steps or time.

A run ends at ``trainer.max_steps`` or after ``trainer.max_time`` (wall clock), whichever comes
first. Its progress is the larger of the two fractions done, so the same milestones (``0.4, 0.8``
of the run) serve a run of 100k GPU steps and a run of 10 minutes on a laptop: with a time budget
the learning rate drops at 40 % and 80 % of the budget, however many steps that turns out to be.
Elapsed time comes from Lightning's ``Timer`` (the callback ``trainer.max_time`` installs), which
keeps the time of earlier sessions of a resumed run. :class:`ScheduleSettings` holds the milestones
and the factor, their defaults and their checks (``model.scheduler`` composes its defaults).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import torch
from lightning.pytorch.callbacks import Timer

from denoise.errors import ConfigError
from denoise.rules import check_fields, fraction, list_of, positive_number


@dataclass(frozen=True)
class ScheduleSettings:
    """``model.scheduler``: the learning rate is multiplied by ``gamma`` at each milestone."""

    # Fractions of the run (of trainer.max_steps or trainer.max_time, whichever ends it first).
    milestones: Annotated[Sequence[float], list_of(fraction())] = (0.4, 0.8)
    gamma: Annotated[float, positive_number()] = 0.1

    def __post_init__(self):
        check_fields(self, "model.scheduler.")


class RunProgress:
    """Fraction of the run done after ``step`` steps: max(step / max_steps, elapsed / max_seconds)."""

    def __init__(self, max_steps: int | None, max_seconds: float | None, elapsed: Callable[[], float]):
        self.max_steps = max_steps if max_steps is not None and max_steps > 0 else None
        self.max_seconds = max_seconds if max_seconds else None
        if self.max_steps is None and self.max_seconds is None:
            raise ConfigError(
                f"trainer.max_steps={max_steps} and no trainer.max_time: set one of them, e.g. "
                f"trainer.max_steps=2000 or trainer.max_time=00:00:10:00 (DD:HH:MM:SS)"
            )
        self.elapsed = elapsed

    def __call__(self, step: int) -> float:
        fractions = [0.0]
        if self.max_steps is not None:
            fractions.append(step / self.max_steps)
        if self.max_seconds is not None:
            fractions.append(self.elapsed() / self.max_seconds)
        return min(max(fractions), 1.0)


def step_factor(progress: float, milestones: Sequence[float], gamma: float) -> float:
    """``gamma`` to the number of milestones (fractions of the run) reached at ``progress``."""
    return gamma ** sum(progress >= milestone for milestone in milestones)


def run_progress(trainer) -> RunProgress:
    """The progress of ``trainer``'s fit, from its ``max_steps`` and the ``Timer`` of its ``max_time``."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    seconds = getattr(timer, "_duration", None) if timer is not None else None
    return RunProgress(trainer.max_steps, seconds, (lambda: timer.time_elapsed("train")) if timer else (lambda: 0.0))


def progress_scheduler(
    optimizer: torch.optim.Optimizer, progress: RunProgress, milestones: Sequence[float], gamma: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Multiplies the learning rate by ``step_factor`` of the progress at every step.

    The factor is a closure, not an object, so the scheduler's state (saved in checkpoints) is its
    step count only; a resumed run recomputes the progress from its step and restored Timer.
    """
    milestones, gamma = [float(m) for m in milestones], float(gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: step_factor(progress(step), milestones, gamma))
