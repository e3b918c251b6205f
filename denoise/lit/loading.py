"""Rebuild any denoising module from its checkpoint alone: the one ``load_model``."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from denoise.errors import ConfigError, UserInputError

DEFAULT_MODULE = "denoise.lit.blind_spot.BlindSpotModule"


def module_class(checkpoint: dict):
    """The LightningModule class a checkpoint was written by (``checkpoint["denoise_module"]``).

    Checkpoints older than that key: a ``student`` hyper-parameter means distillation, else blind-spot.
    """
    path = checkpoint.get("denoise_module")
    if path is None:
        path = ("denoise.lit.distill.DistillationModule" if "student" in checkpoint.get("hyper_parameters", {})
                else DEFAULT_MODULE)
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def load_model(ckpt_path: str | Path | None, device: torch.device | str = "cpu", key: str = "ckpt_path"):
    """The model of a training checkpoint (the ``denoise.lit`` class the checkpoint names) in eval
    mode on ``device``.

    Its weights are the EMA weights when the run averaged them (``callbacks=ema``): Lightning's
    weight-averaging callback stores the average in ``state_dict`` and the raw weights under
    ``current_model_state``. A path that is missing, not a file, or not a checkpoint this project
    wrote is a ConfigError in one line naming the config ``key`` the path came from.
    """
    if not ckpt_path:
        raise ConfigError(f"{key} is not set: pass {key}=logs/train/runs/<run>/checkpoints/last.ckpt")
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        state = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise ConfigError(f"{key}={ckpt_path} {state}; expected a .ckpt file written by train.py")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a damaged file
        raise ConfigError(f"{key}={ckpt_path}: not a readable checkpoint ({_first_line(error)})") from error
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ConfigError(
            f"{key}={ckpt_path}: not a checkpoint of this project (no state_dict and hyper_parameters); "
            f"expected a .ckpt written by train.py"
        )
    try:
        cls = module_class(checkpoint)
        del checkpoint
        # The user's own training output: trusted, and it holds non-tensor state (RNG, loops).
        model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=False)
    except UserInputError:
        raise
    except Exception as error:
        raise ConfigError(f"{key}={ckpt_path}: cannot rebuild the model from it ({_first_line(error)})") from error
    return model.to(device).eval()
