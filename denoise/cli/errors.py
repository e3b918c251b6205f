"""Turning user-input errors into one line, wherever they were raised: ``task_wrapper`` around
every entry point (train.py, eval.py, predict.py, photos.py, cubes.py, export.py)."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from denoise.cli.allocator import keep_freed_memory
from denoise.cli.quiet import quiet_third_party_warnings
from denoise.errors import UserInputError
from denoise.lit.base import NonFiniteLossError
from denoise.lit.divergence import TrainingDivergedError

log = logging.getLogger(__name__)

# Failures that are about the run, not a bug: one line, no traceback.
ONE_LINE_ERRORS = (UserInputError, NonFiniteLossError, TrainingDivergedError)


def find_user_error(error: BaseException) -> Exception | None:
    """The UserInputError (or non-finite loss, or divergence) behind ``error``, also when Hydra's instantiate wrapped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, ONE_LINE_ERRORS):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line(error: BaseException) -> str:
    """The error's message. Raised in a DataLoader worker, it comes back to the main process as
    "Caught DataError in DataLoader worker process 0. Original Traceback ..." ending with the
    line "denoise.errors.DataError: <message>": the message is that line's end."""
    text = str(error).strip()
    if "\nOriginal Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def report_user_error(error: Exception) -> None:
    """Print one line; stop a single run with status 1, let a multirun sweep go on (the line also
    goes to the job's log, which a sweep's summary points to)."""
    message = one_line(error)
    print(f"error: {message}", file=sys.stderr, flush=True)
    if not in_multirun():
        raise SystemExit(1)
    log.error(message)


def report_failed_job(error: BaseException) -> None:
    """A sweep job crashed: its traceback goes to the job's log, one line to stderr; the sweep goes on."""
    log.error("job failed", exc_info=error)
    print(f"error: job failed ({type(error).__name__}: {error}); the sweep goes on", file=sys.stderr, flush=True)


def task_wrapper(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``task(cfg)`` with the entry points' error handling: a user-input error (or a non-finite
    loss) is one line and exit status 1; in a multirun sweep any failed job is reported, returns
    None and the sweep goes on; any other error in a single run is a bug and keeps its traceback.
    Before the task, the process keeps freed memory for reuse (:mod:`denoise.cli.allocator`) and
    silences the third-party warnings a user cannot act on (:mod:`denoise.cli.quiet`).
    """

    @functools.wraps(task)
    def run(cfg: Any) -> Any:
        keep_freed_memory()
        quiet_third_party_warnings()
        try:
            return task(cfg)
        except Exception as error:
            user_error = find_user_error(error)
            if user_error is not None:
                report_user_error(user_error)  # exits 1 in a single run
                return None
            if in_multirun():
                report_failed_job(error)
                return None
            raise

    return run
