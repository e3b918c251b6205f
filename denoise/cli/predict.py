"""Prediction: denoise image files of any size with a checkpoint, each written in its own format.

Inputs: PNG (8/16 bit), JPEG, TIFF (8/16 bit, float), ``.npy`` and MATLAB ``.mat`` (v5 or v7.3;
the variable ``mat_key``, or the file's only array), any size, with the model's channel count.
An alpha channel (RGBA or grey+alpha PNG / TIFF) is not denoised: the colour channels are, and
the alpha channel is written back unchanged. Each output keeps the input's file name, format,
bit depth / dtype and axis layout (``.mat`` outputs are written as MATLAB v5 under the same
variable name). An unreadable file, one with NaN or Inf samples, or one with the wrong channel
count is reported in one line by name and skipped; the others are still processed, and the
exit status is 1 if any file failed.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from omegaconf import DictConfig
from tqdm import tqdm

from denoise.cli.checkpoint import (
    choose_device,
    denoise_with_progress,
    inference_settings,
    load_model,
    model_channels,
    settings_summary,
)
from denoise.cli.config_rules import check_predict_config
from denoise.data.checks import check_finite
from denoise.data.formats.image_files import (
    FORMATS,
    ImageInfo,
    npy_geometry,
    probe_image,
    read_image,
    write_image,
)
from denoise.data.formats.matfile import choose_key, mat_shapes, read_mat
from denoise.errors import ConfigError, DataError

log = logging.getLogger(__name__)
SUFFIXES = (*FORMATS, ".mat")


@dataclass(frozen=True)
class MatInfo:
    """A .mat input: which variable, its dtype and layout (hwc, chw or a 2-D plane)."""

    path: str
    key: str
    dtype: str
    layout: str
    channels: int
    height: int
    width: int
    ndim: int


def probe_mat(path: Path, key: str | None) -> MatInfo:
    name = choose_key(path, key, setting="mat_key")
    shape = mat_shapes(path)[name]
    layout, channels, height, width = npy_geometry(path, shape)
    return MatInfo(str(path), name, "", layout, channels, height, width, len(shape))


def read_mat_image(info: MatInfo) -> tuple[torch.Tensor, MatInfo]:
    array = read_mat(info.path, info.key)
    if array.dtype.kind not in "uif":
        raise DataError(
            f"{info.path}: variable {info.key!r} is {array.dtype}; expected integer or float samples"
        )
    scale = float(np.iinfo(array.dtype).max) if array.dtype.kind in "ui" else 1.0
    chw = array[None] if array.ndim == 2 else (array if info.layout == "chw" else array.transpose(2, 0, 1))
    tensor = torch.from_numpy(np.array(chw, dtype=np.float32)) / scale
    return tensor, MatInfo(
        info.path, info.key, str(array.dtype), info.layout, info.channels, info.height, info.width, info.ndim
    )


def write_mat_image(path: Path, image: torch.Tensor, info: MatInfo) -> Path:
    array = np.clip(image.detach().cpu().double().numpy(), 0.0, 1.0)
    dtype = np.dtype(info.dtype)
    if dtype.kind in "ui":
        array = np.floor(array * np.iinfo(dtype).max + 0.5)
    array = array.astype(dtype)
    array = array[0] if info.ndim == 2 else (array if info.layout == "chw" else array.transpose(1, 2, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {info.key: np.ascontiguousarray(array)}, do_compression=True)
    return path


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
    base, files = input_files(cfg.get("input"), bool(cfg.get("recursive")))
    if not cfg.get("output"):
        raise ConfigError("output is not set: pass output=<a folder for the denoised files>")
    output = Path(str(cfg.output)).expanduser()
    if output.exists() and not output.is_dir():
        raise ConfigError(f"output={cfg.output} is a file; expected a folder")
    device = choose_device(cfg.get("device"))
    model = load_model(cfg.get("ckpt_path"), device)
    settings = inference_settings(model.inference, cfg.get("inference"))
    channels = model_channels(model)
    log.info(
        f"Denoising {len(files)} file(s) from {cfg.input} into {output} on {device} "
        f"({settings_summary(settings)})"
    )

    written, failed = [], {}
    files_bar = tqdm(files, desc="files", unit="file", disable=None)
    tiles_bar = tqdm(desc="tiles", unit="tile", leave=False, disable=None, position=1)

    def on_tile(done: int, total: int) -> None:
        tiles_bar.total, tiles_bar.n = total, done
        tiles_bar.refresh()

    for path in files_bar:
        relative = path.relative_to(base)
        target = output / relative
        try:
            if target.resolve() == path.resolve():
                raise DataError(f"{path}: the output would overwrite the input; choose another output folder")
            image, info = read_input(path, cfg.get("mat_key"), channels)
            colour = denoised_channels(info, channels)  # an alpha channel is kept, not denoised
            tiles_bar.reset()
            noisy = image[None, :colour].to(device)
            denoised = denoise_with_progress(model, noisy, settings, on_tile)[0].float().cpu()
            _write(target, torch.cat([denoised, image[colour:]]), info)
            written.append(str(target))
        except DataError as error:
            failed[str(relative)] = str(error)
            tqdm.write(f"skipped {relative}: {error}", file=sys.stderr)
    tiles_bar.close()
    files_bar.close()
    seconds = time.perf_counter() - started
    summary = f"Denoised {len(written)} of {len(files)} file(s) into {output} in {seconds:.1f} s"
    if failed:
        summary += f"; {len(failed)} failed: {', '.join(failed)}"
    log.info(summary)
    return {"written": written, "failed": failed, "output": str(output)}


def denoised_channels(info: ImageInfo | MatInfo, channels: int | None) -> int:
    """How many leading channels the model denoises: all, or all but an alpha channel it does not take."""
    if isinstance(info, ImageInfo) and info.alpha and channels != info.channels:
        return info.colour_channels
    return info.channels


def read_input(
    path: Path, mat_key: str | None, channels: int | None
) -> tuple[torch.Tensor, ImageInfo | MatInfo]:
    """The image as float (C, H, W) in [0, 1]; the channel count is checked from the header first,
    the samples after reading (NaN or Inf would pass through the network into the output)."""
    if path.suffix.lower() == ".mat":
        info = probe_mat(path, mat_key)
    else:
        info = probe_image(path)
    colour = denoised_channels(info, channels)
    if channels is not None and colour != channels:
        alpha = " and an alpha channel" if colour != info.channels else ""
        raise DataError(
            f"{path}: the image has {colour} channel(s){alpha} but the model takes {channels} "
            f"(model.net.in_ch={channels}); convert the image or use a model for {colour}-channel images"
        )
    image, info = read_mat_image(info) if isinstance(info, MatInfo) else read_image(path)
    check_finite(image, str(path), "fix the file or leave it out of the input")
    return image, info


def _write(target: Path, image: torch.Tensor, info: ImageInfo | MatInfo) -> Path:
    if isinstance(info, MatInfo):
        return write_mat_image(target, image, info)
    return write_image(target, image.clamp(0, 1), like=info)
