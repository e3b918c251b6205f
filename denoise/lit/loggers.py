"""Logger factories the configs name with ``_target_``."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

log = logging.getLogger(__name__)


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing metrics.csv and appends to it: a resumed run continues its curves.

    Lightning has no public switch for this (its writer deletes metrics.csv when it starts), so
    this class and :class:`ResumableCSVLogger` are the one place that leans on Lightning's
    internals, each pinned by tests/test_lightning_adapters.py: ``ExperimentWriter.__init__``
    calls the hook ``_check_log_dir_exists()`` (the deletion) before writing anything, ``save()``
    appends rows under the columns in ``metrics_keys`` (rewriting the header when a column is
    new), and ``CSVLogger`` keeps its writer in ``_experiment``. The hook here reads the existing
    header instead of deleting the file, so the appended rows line up with it.
    """

    def _check_log_dir_exists(self) -> None:
        fs = get_filesystem(self.metrics_file_path)
        if fs.isfile(self.metrics_file_path):
            with fs.open(self.metrics_file_path, "r", newline="") as file:
                header = file.readline().strip()
            self.metrics_keys = sorted(key for key in header.split(",") if key)


class ResumableCSVLogger(CSVLogger):
    """Lightning's CSVLogger, except that it appends to ``metrics.csv`` instead of deleting it."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:  # the writer makes its own directory
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def wandb_account_configured() -> bool:
    """True when W&B can log online: WANDB_API_KEY set, or an api.wandb.ai entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc_path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return netrc.netrc(str(netrc_path)).authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_logger(offline: bool | None = None, **kwargs: Any) -> WandbLogger:
    """A WandbLogger, online when an account is configured and offline otherwise.

    ``offline`` forces the mode; the WANDB_MODE environment variable, when set, wins over both.
    Each call starts a new run (``reinit``), and ``denoise.cli.train`` finishes it when the job
    ends, so the jobs of a multirun sweep never share a run.
    """
    if offline is None:
        offline = not wandb_account_configured()
    settings = kwargs.pop("settings", None)
    return WandbLogger(offline=bool(offline), **kwargs, **({"settings": settings} if settings else {}))


def finish_loggers(loggers: list, status: str) -> None:
    """Finalise every logger and close the W&B run, so the next job of a sweep starts its own."""
    for logger in loggers:
        try:
            logger.finalize(status)
        except Exception as error:  # noqa: BLE001 - a logger failing to close must not hide the run's outcome
            log.warning(f"could not finalise {type(logger).__name__}: {error}")
        if isinstance(logger, WandbLogger):
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=0 if status == "success" else 1)
