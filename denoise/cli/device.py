"""The device eval.py and predict.py run on (their ``device`` key)."""

from __future__ import annotations

import torch

from denoise.errors import ConfigError


def choose_device(name: str | None) -> torch.device:
    """``auto``: the first GPU if there is one, else the CPU; or any torch device name."""
    name = str(name or "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device={name}: not a device name (auto, cpu, cuda, cuda:1, ...)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA device is available here; use device=cpu or device=auto")
    return device
