"""Turning user-input errors into one line, wherever they were raised."""

from __future__ import annotations

import sys

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from denoise.errors import UserInputError


def find_user_error(error: BaseException) -> UserInputError | None:
    """The UserInputError behind ``error``, also when Hydra's instantiate wrapped it."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserInputError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def report_user_error(error: UserInputError) -> None:
    """Print one line; stop a single run with status 1, let a multirun sweep go on."""
    print(f"error: {error}", file=sys.stderr, flush=True)
    if not (HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN):
        raise SystemExit(1)
