"""What eval.py and predict.py share: a model rebuilt from its checkpoint, on one device, with
the inference settings of the checkpoint overridden by the non-null keys of the ``inference`` block."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from denoise.errors import ConfigError, UserInputError
from denoise.lit import BlindSpotModule
from denoise.lit.loading import module_class
from denoise.ops.inference import InferenceSettings, blind_spot_denoise, legacy_keys_mapped


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


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


def load_model(ckpt_path: str | None, device: torch.device | str = "cpu"):
    """The model of a training checkpoint (any module of ``denoise.lit``: the class the checkpoint
    names), in eval mode on ``device``; ConfigError in one line if the path is missing, not a
    file, or not a checkpoint this project wrote."""
    if not ckpt_path:
        raise ConfigError("ckpt_path is not set: pass ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt")
    path = Path(str(ckpt_path)).expanduser()
    if not path.is_file():
        state = "is a folder, not a checkpoint file" if path.is_dir() else "does not exist"
        raise ConfigError(f"ckpt_path={ckpt_path} {state}; expected a .ckpt file written by train.py")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises many types for a damaged file
        raise ConfigError(f"ckpt_path={ckpt_path}: not a readable checkpoint ({_short(error)})") from error
    if (
        not isinstance(checkpoint, dict)
        or "state_dict" not in checkpoint
        or "hyper_parameters" not in checkpoint
    ):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: not a checkpoint of this project (no state_dict and hyper_parameters); "
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
        raise ConfigError(
            f"ckpt_path={ckpt_path}: cannot rebuild the model from it ({_short(error)})"
        ) from error
    return model.to(device).eval()


def network_config(model) -> dict:
    """The saved config of the model's network (``net``; ``student`` of a distilled module)."""
    return dict(model.hparams.get("net") or model.hparams.get("student") or {})


def model_channels(model) -> int | None:
    channels = getattr(getattr(model, "net", None), "in_ch", None)
    if channels is None:
        channels = network_config(model).get("in_ch")
    return int(channels) if channels is not None else None


def inference_settings(saved: InferenceSettings, overrides: Mapping | DictConfig | None) -> InferenceSettings:
    """``saved`` with the non-null values of ``overrides`` (the config's ``inference`` block)."""
    if isinstance(overrides, DictConfig):
        overrides = OmegaConf.to_container(overrides, resolve=True)
    values = legacy_keys_mapped({key: value for key, value in (overrides or {}).items() if value is not None})
    unknown = sorted(set(values) - set(InferenceSettings.keys()))
    if unknown:
        raise ConfigError(
            f"inference.{unknown[0]} is not an inference setting; "
            f"the settings are {', '.join(InferenceSettings.keys())}"
        )
    return dataclasses.replace(saved, **values)


def settings_summary(settings: InferenceSettings) -> str:
    parts = [f"PD {settings.pd_factor}"]
    if settings.pd_layout == "mosaic":
        parts[0] += f" (mosaic, pad {settings.pd_pad})"
    if settings.r3_passes:
        r3 = f"R3 T={settings.r3_passes} p={settings.r3_p} seed={settings.r3_seed} pad={settings.r3_pad}"
        parts.append(r3)
    if settings.ensemble == "pass":
        parts.append("self-ensemble x8 of every network pass")
    elif settings.ensemble == "protocol":
        parts.append("self-ensemble x8 of the whole protocol")
    parts.append(f"tiles {settings.tile_size}/{settings.tile_overlap}" if settings.tile_size else "no tiling")
    parts.append("bf16" if settings.precision == "bf16" else "float32")
    return ", ".join(parts)


def denoise_with_progress(
    model,
    noisy: torch.Tensor,
    settings: InferenceSettings,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """``model.denoise(noisy, settings)``, reporting ``progress(done, total)`` network calls (tiles)
    where the model's ``denoise`` accepts it or is BlindSpotModule's own protocol."""
    if progress is not None and "progress" in inspect.signature(model.denoise).parameters:
        return model.denoise(noisy, settings, progress=progress)
    if progress is not None and type(model).denoise is BlindSpotModule.denoise:
        with torch.no_grad():
            return blind_spot_denoise(model, noisy, settings, progress=progress)
    return model.denoise(noisy, settings)
