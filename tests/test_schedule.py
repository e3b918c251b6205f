"""The learning-rate schedule follows the run's progress, in steps or in wall-clock time."""

import lightning as L
import pytest
import torch

from denoise.errors import ConfigError
from denoise.lit.schedule import RunProgress, progress_scheduler, run_progress, step_factor


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_is_the_larger_fraction_of_steps_and_time():
    clock = Clock()
    progress = RunProgress(max_steps=100, max_seconds=60.0, elapsed=clock)
    assert progress(10) == pytest.approx(0.1)
    clock.now = 30.0
    assert progress(10) == pytest.approx(0.5)  # time runs out first
    assert progress(80) == pytest.approx(0.8)  # steps run out first
    clock.now = 600.0
    assert progress(10) == 1.0
    assert RunProgress(max_steps=-1, max_seconds=60.0, elapsed=clock)(10**6) == 1.0
    assert RunProgress(max_steps=50, max_seconds=None, elapsed=clock)(25) == pytest.approx(0.5)


def test_a_run_without_steps_or_time_is_one_line_naming_both_keys():
    with pytest.raises(ConfigError, match=r"trainer.max_steps=-1 and no trainer.max_time"):
        RunProgress(max_steps=-1, max_seconds=None, elapsed=Clock())


def test_step_factor_counts_the_milestones_reached():
    assert step_factor(0.0, [0.4, 0.8], 0.1) == 1.0
    assert step_factor(0.4, [0.4, 0.8], 0.1) == pytest.approx(0.1)
    assert step_factor(0.99, [0.4, 0.8], 0.1) == pytest.approx(0.01)


def test_time_budget_drops_the_learning_rate_at_fractions_of_the_budget():
    clock = Clock()
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = progress_scheduler(optimizer, RunProgress(-1, 100.0, clock), [0.5, 0.9], 0.1)
    seen = []
    for now in (10.0, 49.0, 51.0, 89.0, 95.0):
        clock.now = now
        optimizer.step()
        scheduler.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01])
    assert "lr_lambdas" in scheduler.state_dict() and scheduler.state_dict()["lr_lambdas"] == [None]


def test_step_budget_matches_the_step_milestones():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = progress_scheduler(optimizer, RunProgress(10, None, Clock()), [0.4, 0.8], 0.1)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([1.0] * 4 + [0.1] * 4 + [0.01] * 2)


def test_run_progress_reads_the_timer_of_trainer_max_time(tmp_path):
    trainer = L.Trainer(max_time={"minutes": 2}, max_steps=-1, default_root_dir=tmp_path, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False)
    progress = run_progress(trainer)
    assert progress.max_seconds == 120.0 and progress.max_steps is None
    trainer = L.Trainer(max_steps=7, default_root_dir=tmp_path, logger=False, enable_checkpointing=False)
    assert run_progress(trainer).max_steps == 7 and run_progress(trainer).max_seconds is None
