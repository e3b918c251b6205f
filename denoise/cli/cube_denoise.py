"""Denoise one hyperspectral cube file whole and write it back as the same file.

The cube is read once in its own dtype and layout. The bands the network takes are normalised
as in training (``CubeReading``: the parameters come from the noisy cube itself, as the
datamodule computes them), denoised with the checkpoint's inference protocol (tiled over space,
every band in each tile), mapped back to the cube's own units, blended per band with the noisy
band by the band's measured noise level (:func:`blend_with_noisy`), rounded and clipped for
integer dtypes, and written into the stored array, which goes to disk in the input's format, variable,
dtype and axis order. Constant bands (zeroed water-absorption bands) and bands outside the
checkpoint's ``data.band_range`` are written back unchanged.

``predict.py`` sends cubes here when the checkpoint's ``val_protocol`` is ``hsi``: image readers
take channels as the smallest axis, which a 100 x 100 x 198 cube is not.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from denoise.data.checks import check_finite
from denoise.data.formats.hsi_cube import (
    CubeInfo,
    bands_first,
    constant_bands,
    normalization,
    probe_cube,
    read_stored,
    single_cube_key,
    to_stored,
    write_cube,
)
from denoise.data.noise_level import band_sigmas
from denoise.errors import DataError
from denoise.lit import DenoisingModule
from denoise.lit.blind_spot import BlindSpotModule
from denoise.ops import InferenceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CubeReading:
    """How a network saw its cubes (``data.*`` of its training run)."""

    normalize: str = "minmax"
    quantiles: tuple[float, float] = (0.02, 0.98)
    scale: float | None = None
    band_range: tuple[int, int] | None = None
    key: str | None = None
    layout: str = "auto"

    @classmethod
    def from_dict(cls, values: dict | DictConfig) -> CubeReading:
        band_range = values.get("band_range")
        return cls(str(values.get("normalize", "minmax")), tuple(values.get("quantiles", (0.02, 0.98))),
                   values.get("scale"), tuple(band_range) if band_range else None, values.get("key"),
                   str(values.get("layout", "auto")))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> CubeReading:
        """The reading an HSI datamodule recorded in the checkpoint; the ``data=hsi`` defaults
        (global min-max) for checkpoints written before it did."""
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
        recorded = checkpoint.get("HSIDataModule", {}).get("cube_reading")
        if recorded is None:
            log.warning(f"{path}: no cube normalisation recorded; assuming data.normalize=minmax")
            return cls()
        return cls.from_dict(recorded)


@dataclass
class CubeOutcome:
    source: Path
    target: Path
    seconds: float
    bands: int
    constant_bands: list[int]
    noisy_share: np.ndarray | None = None  # per denoised band: the blend's gain towards the noisy cube


def probe_single_cube(path: str | Path, key: str | None, layout: str = "auto", setting: str = "mat_key") -> CubeInfo:
    """The cube of a file, refusing a 2-D array and a .mat with several cubes and no ``key``."""
    info = probe_cube(path, single_cube_key(path, key, setting), layout)
    if info.bands == 1 and info.axis_order != "unfolded":
        raise DataError(f"{path}: {info.key or 'the array'} is 2-D ({info.height}x{info.width}); "
                        f"expected a cube H x W x bands")
    return info


def denoise_cube_file(
    model: DenoisingModule, settings: InferenceSettings, path: Path, target: Path, reading: CubeReading,
    progress: Callable[[int, int], None] | None = None, blend: bool = True,
) -> CubeOutcome:
    """Denoise the cube ``path`` into ``target`` (see the module docstring); DataError in one line.

    ``blend``: give each band back the share of its residual that the noise level says is signal
    (:func:`blend_with_noisy`); only for a blind-spot protocol without R3, where it holds.
    """
    started = time.perf_counter()  # ``target`` was checked with the other outputs before any work
    info = probe_single_cube(path, reading.key, reading.layout)
    start, stop = reading.band_range or (0, info.bands)
    if stop > info.bands or stop - start != model.in_channels:
        selected = f" in data.band_range [{start}, {stop})" if reading.band_range else ""
        raise DataError(f"{path}: {info.bands} bands{selected} but the model takes {model.in_channels} "
                        f"(model.net.in_channels); use a model trained on cubes of {info.bands} bands")
    stored = read_stored(info)
    cube = bands_first(info, stored)  # a view: denoised bands are written into ``stored``
    check_finite(cube, str(path), "fix the file or leave it out of the input")
    constant = constant_bands(cube[start:stop])

    normalised = np.array(cube[start:stop], dtype=np.float32)  # the one float copy of the input
    blend = blend and isinstance(model, BlindSpotModule) and settings.r3_passes == 0
    sigmas = band_sigmas(normalised) if blend else None  # in the cube's units
    low, span, clip = normalization(normalised, reading.normalize, reading.quantiles, reading.scale, str(path))
    low, span = low.reshape(-1, 1, 1), span.reshape(-1, 1, 1)
    normalised -= low
    normalised /= span
    if clip:
        np.clip(normalised, 0.0, 1.0, out=normalised)
    with torch.no_grad():
        denoised = model.denoise(torch.from_numpy(normalised)[None].to(model.device), settings, progress)[0]
    del normalised
    denoised = denoised.float().cpu().numpy()
    denoised *= span
    denoised += low
    gains = blend_with_noisy(denoised, cube[start:stop], sigmas) if blend else None
    put_bands(cube, denoised, start, constant)
    del denoised
    shares = np.shares_memory(cube, stored)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_cube(target, info, stored if shares else to_stored(info, cube, stored.shape))
    return CubeOutcome(path, target, time.perf_counter() - started, info.bands,
                       [start + int(band) for band in np.flatnonzero(constant)], gains)


def blend_with_noisy(denoised: np.ndarray, noisy: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """``denoised += gain * (noisy - denoised)`` per band, in place; returns the gains.

    A blind-spot output at a pixel does not depend on that pixel's noise, so its error ``e`` and
    the noise ``n`` are independent: the residual's power is ``E[e^2] + sigma^2``, and
    ``gain = E[e^2] / (E[e^2] + sigma^2) = 1 - sigma^2 / power`` minimises the blend's error,
    which is then below both the network's and the noise's. Where the network interpolates
    worse than the noise is (mild noise, a short training, fine texture) the band stays close
    to the noisy one; where the noise dominates it stays the network's.
    """
    gains = np.zeros(len(denoised))
    for band, (estimate, observed, sigma) in enumerate(zip(denoised, noisy, sigmas)):
        residual = observed.astype(np.float32) - estimate
        power = float(np.mean(residual.astype(np.float64) ** 2))
        gains[band] = min(max(1.0 - float(sigma) ** 2 / power, 0.0), 1.0) if power > 0 else 0.0
        estimate += np.float32(gains[band]) * residual
    return gains


def put_bands(cube: np.ndarray, denoised: np.ndarray, start: int, constant: np.ndarray) -> None:
    """Write ``denoised`` (float, the cube's units) into ``cube`` from band ``start`` on, in the cube's
    dtype (integers rounded and clipped to its range); constant bands stay as they are."""
    integer = cube.dtype.kind in "ui"
    limits = (np.iinfo(cube.dtype).min, np.iinfo(cube.dtype).max) if integer else None
    for index, band in enumerate(denoised):  # band by band: no second full-size temporary
        if constant[index]:
            continue
        if integer:
            band = np.clip(np.rint(band), *limits)
        cube[start + index] = band


def predict_cubes(
    cfg: DictConfig, model: DenoisingModule, settings: InferenceSettings, base: Path, targets: dict[Path, Path],
    output: Path,
) -> dict:
    """``predict.py`` for a hyperspectral checkpoint: every cube of ``targets`` (input -> output, planned
    and checked by ``predict.py``) denoised; a bad cube is reported by name and skipped."""
    started = time.perf_counter()
    # The variable: mat_key, else each file's only cube (not the training files' name: other files, other names)
    reading = replace(CubeReading.from_checkpoint(cfg.ckpt_path), key=cfg.get("mat_key"))
    written, failed = [], {}
    for path, target in targets.items():
        relative = path.relative_to(base)
        try:
            outcome = denoise_cube_file(model, settings, path, target, reading)
            written.append(str(outcome.target))
            log.info(f"{relative}: {outcome.seconds:.1f} s")
        except DataError as error:
            failed[str(relative)] = str(error)
            print(f"skipped {relative}: {error}", file=sys.stderr)
    summary = f"Denoised {len(written)} of {len(targets)} cube(s) into {output} in {time.perf_counter() - started:.1f} s"
    log.info(summary + (f"; {len(failed)} failed: {', '.join(failed)}" if failed else ""))
    return {"written": written, "failed": failed, "output": str(output)}
