"""Prediction: denoise image files of any size with a checkpoint, each written in its own format.

Inputs: PNG (8/16 bit), JPEG, TIFF (8/16 bit, float), ``.npy`` and MATLAB ``.mat`` (v5 or v7.3;
the variable ``mat_key``, or the file's only array), any size, with the model's channel count.
An alpha channel (RGBA or grey+alpha PNG / TIFF) is not denoised: the colour channels are, and
the alpha channel is written back unchanged. Each output keeps the input's file name, format,
bit depth / dtype and axis order (``.mat`` outputs are written as MATLAB v5 under the same
variable name). Before the model loads, every output is checked (:mod:`denoise.cli.outputs`): a
run that could not write its results stops in one line. An unreadable file, one with NaN or Inf samples, or one with the wrong channel
count is reported in one line by name and skipped; the others are still processed, and the
exit status is 1 if any file failed.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from denoise.cli.config_rules import check_predict_config
from denoise.cli.device import choose_device
from denoise.cli.outputs import plan_outputs
from denoise.data.checks import check_finite
from denoise.data.formats.image_files import IMAGE_SUFFIXES, ImageInfo, probe_image, read_image, write_image
from denoise.errors import ConfigError, DataError
from denoise.lit import DenoisingModule, load_model
from denoise.lit.progress import current_stage
from denoise.ops import InferenceSettings, Progress
from denoise.ops.precision import settings_for_device
from denoise.ops.protocols import protocol_summary

log = logging.getLogger(__name__)
SUFFIXES = IMAGE_SUFFIXES


def input_files(source: str | None, recursive: bool) -> tuple[Path, list[Path]]:
    """(base folder, the files to denoise)."""
    if not source:
        raise ConfigError("input is not set: pass input=<an image file or a folder of images>")
    path = Path(str(source)).expanduser()
    if path.is_file():
        return path.parent, [path]
    if not path.is_dir():
        raise ConfigError(f"input={source} does not exist; expected an image file or a folder")
    pattern = "**/*" if recursive else "*"
    files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not files:
        raise ConfigError(
            f"input={source}: no images ({', '.join(SUFFIXES)}) in this folder"
            + ("" if recursive else "; recursive=true looks into sub-folders")
        )
    return path, files


def predict(cfg: DictConfig) -> dict:
    """Denoise ``cfg.input`` into ``cfg.output``; returns {"written": [...], "failed": {name: reason}}."""
    started = time.perf_counter()
    check_predict_config(cfg)
    recursive = bool(cfg.get("recursive"))
    base, files = input_files(cfg.get("input"), recursive)
    targets = plan_outputs(base, files, cfg.get("output"), recursive)  # before the model loads
    output = Path(str(cfg.output)).expanduser()
    device = choose_device(cfg.get("device"))
    model = load_model(cfg.get("ckpt_path"), device)
    # precision auto (the photos student's) becomes what this device runs: bf16 where native, else 32
    settings = settings_for_device(model.inference.overridden(OmegaConf.to_container(cfg.inference, resolve=True)),
                                   device)
    if model.val_protocol == "hsi":  # cubes: bands as the network saw them, written back as the cube was
        from denoise.cli.cube_denoise import predict_cubes
        return predict_cubes(cfg, model, settings, base, targets, output)
    log.info(f"Denoising {len(files)} file(s) from {cfg.input} into {output} on {device} ({protocol_summary(settings)})")

    written, failed = [], {}
    tiles = TileProgress()
    for path in tqdm(files, desc=file_bar_label(), unit="file", disable=None):
        relative = path.relative_to(base)
        try:
            tiles.reset()
            written.append(str(denoise_file(model, settings, path, targets[path], cfg.get("mat_key"), tiles)))
        except DataError as error:
            failed[str(relative)] = str(error)
            tqdm.write(f"skipped {relative}: {error}", file=sys.stderr)
    tiles.close()
    summary = f"Denoised {len(written)} of {len(files)} file(s) into {output} in {time.perf_counter() - started:.1f} s"
    if failed:
        summary += f"; {len(failed)} failed: {', '.join(failed)}"
    log.info(summary)
    return {"written": written, "failed": failed, "output": str(output)}


def file_bar_label() -> str:
    """``files``, or the stage's name when a longer run (photos.py) denoises as one of its stages."""
    named = current_stage()
    return named.name if named else "files"


def denoise_file(
    model: DenoisingModule, settings: InferenceSettings, path: Path, target: Path, mat_key: str | None,
    progress: Progress,
) -> Path:
    """Read ``path``, denoise it (an alpha channel is kept, not denoised), write it to ``target`` in
    the input's format (``target`` comes from :func:`plan_outputs`, which keeps inputs safe); DataError
    in one line naming the file if it cannot be."""
    image, info = read_input(path, mat_key, model.in_channels)
    colour = denoised_channels(info, model.in_channels)
    denoised = model.denoise(image[None, :colour].to(model.device), settings, progress)[0].float().cpu()
    return write_image(target, torch.cat([denoised, image[colour:]]).clamp(0, 1), like=info)


class TileProgress:
    """A progress bar of the network calls (tiles) of the file being denoised."""

    def __init__(self):
        self.bar = tqdm(desc="tiles", unit="tile", leave=False, disable=None, position=1)

    def __call__(self, done: int, total: int) -> None:
        self.bar.total, self.bar.n = total, done
        self.bar.refresh()

    def reset(self) -> None:
        self.bar.reset()

    def close(self) -> None:
        self.bar.close()


def denoised_channels(info: ImageInfo, channels: int | None) -> int:
    """How many leading channels the model denoises: all, or all but an alpha channel it does not take."""
    if info.alpha and channels != info.channels:
        return info.colour_channels
    return info.channels


def read_input(
    path: Path, mat_key: str | None, channels: int | None
) -> tuple[torch.Tensor, ImageInfo]:
    """The image as float (C, H, W) in [0, 1]; the channel count is checked from the header first,
    the samples after reading (NaN or Inf would pass through the network into the output)."""
    info = probe_image(path, mat_key)
    colour = denoised_channels(info, channels)
    if channels is not None and colour != channels:
        alpha = " and an alpha channel" if colour != info.channels else ""
        raise DataError(
            f"{path}: the image has {colour} channel(s){alpha} but the model takes {channels} "
            f"(model.net.in_channels={channels}); convert the image or use a model for {colour}-channel images"
        )
    image, info = read_image(path, info)
    check_finite(image, str(path), "fix the file or leave it out of the input")
    return image, info
