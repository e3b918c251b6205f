"""The decorator of every entry point at the repository root (train.py, eval.py, predict.py,
photos.py, cubes.py, export.py): one place for how a script becomes a command."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hydra

from denoise.cli.errors import task_wrapper


def entry_point(config_name: str) -> Callable[[Callable[[Any], Any]], Callable[..., Any]]:
    """``@entry_point("train")`` on a root script's ``main(cfg)``: Hydra composes configs/train.yaml
    with the command line's overrides, and ``main`` runs under :func:`task_wrapper` (one-line user
    errors, sweeps that go on). Hydra looks for configs/ next to the file that defines ``main`` and
    names the job, so its log file, after that file (train.py: train.log)."""

    def decorate(main: Callable[[Any], Any]) -> Callable[..., Any]:
        return hydra.main(version_base="1.3", config_path="configs", config_name=config_name)(task_wrapper(main))

    return decorate
