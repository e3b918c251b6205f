"""Rebuild any denoising module from its checkpoint alone."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from denoise.errors import ConfigError

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


def load_model(ckpt_path: str | Path, map_location="cpu", **kwargs):
    """The model of ``ckpt_path`` (BlindSpotModule, DistillationModule, ...) in eval mode.

    Its weights are the EMA weights when the run averaged them (``callbacks=ema``): Lightning's
    weight-averaging callback stores the average in ``state_dict`` and the raw weights under
    ``current_model_state``.
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    cls = module_class(checkpoint)
    return cls.load_from_checkpoint(path, map_location=map_location, **kwargs).eval()
