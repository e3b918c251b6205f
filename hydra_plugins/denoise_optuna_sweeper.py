"""The Optuna sweeper of ``configs/hparams_search``: hydra-optuna-sweeper's, ending cleanly when no trial succeeds.

Hydra only instantiates sweepers defined under the ``hydra_plugins`` namespace package, hence
this module next to ``train.py`` (the script's folder is on ``sys.path``). hydra-optuna-sweeper
records a trial without an objective as FAILED and goes on; when every trial failed, its summary
(the best trial) fails with a traceback. This sweeper says so in one line instead, names where
the trials' logs are, and exits with status 1.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper


class RecordingLauncher:
    """Hands jobs to the configured launcher and keeps what they returned."""

    def __init__(self, launcher):
        self.launcher = launcher
        self.returns: list[JobReturn] = []

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        self.returns.extend(returns)
        return returns


def has_objective(job: JobReturn) -> bool:
    """A trial succeeded when its job completed and returned a finite number."""
    if job.status != JobStatus.COMPLETED:
        return False
    value = job.return_value
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def job_log(job: JobReturn) -> str | None:
    """The job's log file (Hydra's job logging writes ``<output dir>/<job name>.log``)."""
    if job.hydra_cfg is None:
        return None
    hydra = job.hydra_cfg.hydra
    return str(Path(hydra.runtime.output_dir) / f"{hydra.job.name}.log")


class DenoiseOptunaSweeper(OptunaSweeper):
    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.recorder = RecordingLauncher(self.sweeper.launcher)
        self.sweeper.launcher = self.recorder

    def sweep(self, arguments: list[str]) -> None:
        try:
            super().sweep(arguments)
        except Exception:
            if not self.recorder.returns or any(map(has_objective, self.recorder.returns)):
                raise  # not the case of a sweep without any result
        jobs = self.recorder.returns
        if jobs and not any(map(has_objective, jobs)):
            logs = [log for log in map(job_log, jobs) if log]
            shown = ", ".join(logs[:3]) + (f" and {len(logs) - 3} more" if len(logs) > 3 else "")
            print(
                f"error: all {len(jobs)} trial(s) of the sweep failed, so it has no best value; "
                f"the trials' logs: {shown}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1)
