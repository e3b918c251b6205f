"""``data=hsi``: hyperspectral cubes with synthetic noise (or real noise), as (bands, H, W) in [0, 1].

Training: random ``crop_size`` patches of the training cubes, each with fresh synthetic noise.
Validation and test: whole cubes (optionally a centre ``val_crop``) with one fixed, seeded noise
realisation each, or the file's own noisy variable (``noisy_key: input`` for QRNN3D test files).
Splits: by file lists (``files`` / ``val_files`` / ``test_files``, lists or globs), or, without
``val_files``, by holding out the last ``holdout`` fraction of each training cube's width (or
height) so validation never sees a pixel the network trained on. With ``noise=none`` the cubes
are taken as really noisy: training on them directly, evaluation without a reference, or
against ``reference_files`` (clean cubes with the training cubes' file names), each normalised
with its noisy cube's parameters, so the metrics compare what the network sees.

Checkpoints record how cubes were read (``state_dict()["cube_reading"]``: normalisation, band
range, variable, layout), so a cube can be denoised later exactly as the network saw its data.

``bands`` is the band count the network is built for (``model.net.in_channels: ${data.bands}``); the
data must match it after ``band_range`` (a [start, stop) slice of the bands).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

import numpy as np

from denoise.data.checks import check_crop_fits
from denoise.data.datamodules.base import TrainingDataModule, is_synthetic
from denoise.data.datasets.images import NoisyCropDataset, PairedImageDataset, as_float, fixed_noise
from denoise.data.formats.hsi_cube import (
    NORMALIZATIONS,
    CubeInfo,
    apply_normalization,
    expand_files,
    normalization,
    probe_cube,
    read_cube,
)
from denoise.errors import ConfigError, DataError
from denoise.rules import checked, fraction, integer, one_of, optional

log = logging.getLogger(__name__)
AXES = ("width", "height")


def _centre(array: np.ndarray, size: int | None) -> np.ndarray:
    if not size:
        return array
    _, h, w = array.shape
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return array[:, top : top + size, left : left + size]


@dataclass(frozen=True)
class CubeReader:
    """Reads one cube as the settings say: bands selected, normalised to [0, 1] (picklable for workers)."""

    band_range: tuple[int, int] | None
    normalize: str
    quantiles: tuple[float, float]
    scale: float | None
    noisy_key: str | None

    def bands(self, cube: np.ndarray) -> np.ndarray:
        return cube[self.band_range[0] : self.band_range[1]] if self.band_range is not None else cube

    def __call__(self, info: CubeInfo) -> tuple[np.ndarray, np.ndarray | None]:
        """(clean, noisy from the file or None), normalised alike, (bands, H, W) float32."""
        raw = self.bands(read_cube(info))
        params = normalization(raw, self.normalize, self.quantiles, self.scale, info.path)
        noisy = None
        if self.noisy_key is not None:
            noisy = apply_normalization(self.bands(read_cube(info, self.noisy_key)), params)
            if noisy.shape != raw.shape:
                raise DataError(f"{info.path}: {self.noisy_key} has shape {noisy.shape} but the cube {raw.shape}")
        return apply_normalization(raw, params), noisy

    def reference_pair(self, noisy_info: CubeInfo, clean_info: CubeInfo) -> tuple[np.ndarray, np.ndarray]:
        """(clean, noisy) of a real-noise cube and its reference, both normalised by the noisy
        cube's parameters (those training and inference use)."""
        noisy = self.bands(read_cube(noisy_info))
        params = normalization(noisy, self.normalize, self.quantiles, self.scale, noisy_info.path)
        clean = apply_normalization(self.bands(read_cube(clean_info)), params)
        if clean.shape != noisy.shape:
            raise DataError(f"{clean_info.path}: the reference has shape {clean.shape} but its noisy cube "
                            f"{noisy_info.path} {noisy.shape}")
        return clean, apply_normalization(noisy, params)


class HSIDataModule(TrainingDataModule):
    @checked("data.")
    def __init__(
        self,
        noise: Callable | None = None,
        # Training cubes: a list of paths and/or globs, e.g. [icvl/train/*.mat].
        files: str | Sequence[str] | None = None,
        val_files: str | Sequence[str] | None = None,  # validation cubes; None: hold out a part of each training cube
        test_files: str | Sequence[str] | None = None,  # test cubes; None: the validation set
        reference_files: str | Sequence[str] | None = None,  # clean references of real-noise cubes, same names
        bands: Annotated[int, integer(1)] = 31,  # after band_range (ICVL/CAVE 31, Jasper Ridge 198, DC Mall 191)
        band_range: Sequence[int] | None = None,  # [start, stop): use a contiguous subset of the bands
        # The .mat variable; None: rad (ICVL), gt (QRNN3D tests), data, Y, ... or the only array.
        key: str | None = None,
        noisy_key: str | None = None,  # read the noisy cube from this variable (QRNN3D tests: input), add no noise
        layout: str = "auto",  # auto | hwc (bands last) | chw (bands first)
        # minmax (global, ICVL) | band_minmax | quantile (per band, DC Mall) | scale | none
        normalize: Annotated[str, one_of(*NORMALIZATIONS)] = "minmax",
        quantiles: Sequence[float] = (0.02, 0.98),  # normalize=quantile: each band is stretched between these
        scale: float | None = None,  # normalize=scale: the value of white (Jasper Ridge: 5000)
        # Without val_files: the last 20% of each cube's width (or height) validate, never train.
        holdout: Annotated[float, fraction(high_open=True)] = 0.2,
        holdout_axis: Annotated[str, one_of(*AXES)] = "width",
        # Centre crop of the validation/test cubes (ICVL protocol: 512).
        val_crop: Annotated[int | None, optional(integer(1))] = None,
        crop_size: int = 64,  # training patches (ICVL: 64); a multiple of model.train_pd.factor
        batch_size: int = 8,
        num_workers: int = 0,
        epoch_length: int = 800,  # crops per epoch; training length is trainer.max_steps
        augment: bool = False,  # flips/rotations
        crops_per_image: Annotated[int, integer(1)] = 1,  # crops cut from each cube before reading another
        lazy: bool = False,  # re-read cubes per crop instead of holding them (many large cubes)
        skip_bad: bool = False,  # skip unreadable / too small cubes with a warning
        seed: int = 0,  # seeds the fixed validation/test noise
    ):
        super().__init__(noise, crop_size, batch_size, num_workers, epoch_length, augment, seed)
        if files is None:
            raise ConfigError("data.files is not set: pass data.files=[cube.mat, ...] or a glob such as 'icvl/*.mat'")
        if band_range is not None and (len(band_range) != 2 or not 0 <= band_range[0] < band_range[1]):
            raise ConfigError(f"data.band_range={list(band_range)!r}: expected [start, stop) with 0 <= start < stop")
        if reference_files is not None and (val_files is not None or is_synthetic(noise) or noisy_key is not None):
            raise ConfigError("data.reference_files: clean references of real-noise cubes need noise=none, "
                              "no data.val_files and no data.noisy_key")
        self.files, self.val_files, self.test_files = files, val_files, test_files
        self.reference_files = reference_files
        self.bands = bands
        self.band_range = tuple(band_range) if band_range is not None else None
        self.key, self.noisy_key, self.axis_order = key, noisy_key, layout
        self.reader = CubeReader(self.band_range, normalize, tuple(quantiles), scale, noisy_key)
        self.holdout, self.holdout_axis, self.val_crop = float(holdout), holdout_axis, val_crop
        self.crops_per_image, self.lazy, self.skip_bad = crops_per_image, bool(lazy), skip_bad

    # ------------------------------------------------------------------------------ reading

    def _probe(self, path: Path) -> CubeInfo:
        info = probe_cube(path, self.key, self.axis_order)
        bands = info.bands
        if self.band_range is not None:
            start, stop = self.band_range
            if stop > bands:
                raise DataError(f"{path}: data.band_range={list(self.band_range)} exceeds its {bands} bands")
            bands = stop - start
        if bands != self.bands:
            detail = " after data.band_range" if self.band_range is not None else ""
            raise DataError(
                f"{path}: {bands} bands{detail} but data.bands={self.bands} (the network's model.net.in_channels); "
                f"set data.bands={bands}" + ("" if self.band_range else " or select bands with data.band_range")
            )
        return info

    def _probe_all(self, paths: list[Path]) -> list[CubeInfo]:
        infos = []
        for path in paths:
            try:
                infos.append(self._probe(path))
            except DataError as error:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping a bad cube: {error}", stacklevel=2)
        return infos

    def load(self, info: CubeInfo) -> tuple[np.ndarray, np.ndarray | None]:
        return self.reader(info)

    def _regions(self, info: CubeInfo) -> tuple[slice, slice]:
        """(train, validation) slices of the holdout axis."""
        length = info.width if self.holdout_axis == "width" else info.height
        held = round(self.holdout * length) if self.holdout > 0 and not (self.val_files or self.reference_files) else 0
        return slice(0, length - held), slice(length - held, length) if held else slice(0, 0)

    def _cut(self, cube: np.ndarray, region: slice) -> np.ndarray:
        return cut(cube, region, self.holdout_axis)

    # ------------------------------------------------------------------------------ setup

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_infos = self._probe_all(expand_files(self.files, "files"))
        val_infos = self._probe_all(expand_files(self.val_files, "val_files"))
        test_infos = self._probe_all(expand_files(self.test_files, "test_files"))
        synthetic = is_synthetic(self.noise)
        if self.noisy_key is None and not synthetic:
            log.info("HSI: noise=none, the cubes are taken as really noisy (evaluation without a reference)")

        train_images, names, held_out, usable = [], [], [], []
        for info in train_infos:
            train_region, val_region = self._regions(info)
            height = info.height if self.holdout_axis == "width" else train_region.stop
            width = train_region.stop if self.holdout_axis == "width" else info.width
            try:
                check_crop_fits(f"{info.path} (training part)", height, width, self.crop_size)
                image = partial(_load_region, self.reader, info, train_region, self.holdout_axis) if self.lazy else (
                    self._cut(self.load(info)[0], train_region)
                )
            except DataError as error:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping a bad cube: {error}", stacklevel=2)
                continue
            train_images.append(image)
            names.append(info.path)
            usable.append(info)
            if val_region.stop > val_region.start:
                held_out.append((info, val_region))
        if not train_images:
            raise DataError(f"data.files={self.files}: no usable cube")
        self.train_set = NoisyCropDataset(
            train_images, self.crop_size, self.epoch_length, self.augment, names,
            noise=self.noise if synthetic else None, crops_per_image=self.crops_per_image, skip_bad=self.skip_bad,
        )
        if self.reference_files is not None:
            self.val_set = self._reference_set(usable)
        elif val_infos:
            self.val_set = self._evaluation_set([(info, None) for info in val_infos], offset=0)
        elif held_out:
            self.val_set = self._evaluation_set(held_out, offset=0)
        else:
            self.val_set = self._evaluation_set([(info, None) for info in usable], offset=0)
        if test_infos:
            self.test_set = self._evaluation_set([(info, None) for info in test_infos], offset=10_000)
        self.in_channels = self.bands
        log.info(
            f"HSI: {len(usable)} training cube(s), {len(self.val_set)} validation cube(s), {self.bands} bands, "
            f"normalize={self.reader.normalize}"
        )

    def _reference_set(self, noisy_infos: list[CubeInfo]) -> PairedImageDataset:
        """The whole training cubes against their clean references, matched by file name."""
        references = {Path(info.path).name: info for info in self._probe_all(
            expand_files(self.reference_files, "reference_files"))}
        noisy_list, clean_list, names = [], [], []
        for info in noisy_infos:
            name = Path(info.path).name
            if name not in references:
                raise DataError(f"data.reference_files: no reference named {name} for {info.path}")
            clean, noisy = self.reader.reference_pair(info, references[name])
            noisy_list.append(as_float(_centre(noisy, self.val_crop).copy()))
            clean_list.append(as_float(_centre(clean, self.val_crop).copy()))
            names.append(Path(name).stem)
        return PairedImageDataset(noisy_list, clean_list, names)

    # ------------------------------------------------------------------------------ checkpoints

    def cube_reading(self) -> dict:
        """How this datamodule reads and normalises a cube: what inference must repeat."""
        return {"normalize": self.reader.normalize, "quantiles": list(self.reader.quantiles),
                "scale": self.reader.scale, "band_range": list(self.band_range) if self.band_range else None,
                "key": self.key, "layout": self.axis_order, "bands": self.bands}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "cube_reading": self.cube_reading()}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict({key: value for key, value in state_dict.items() if key != "cube_reading"})

    def _evaluation_set(self, items: list[tuple[CubeInfo, slice | None]], offset: int) -> PairedImageDataset:
        noisy_list, clean_list, names = [], [], []
        for i, (info, region) in enumerate(items):
            clean, noisy = self.load(info)
            if region is not None:
                clean = self._cut(clean, region)
                noisy = self._cut(noisy, region) if noisy is not None else None
            clean = np.ascontiguousarray(_centre(clean, self.val_crop))
            noisy = np.ascontiguousarray(_centre(noisy, self.val_crop)) if noisy is not None else None
            reference = as_float(clean)
            if noisy is not None:
                noisy_list.append(as_float(noisy))
                clean_list.append(reference)
            elif is_synthetic(self.noise):
                noisy_list.append(fixed_noise(self.noise, reference, self.seed, offset + i).float())
                clean_list.append(reference)
            else:  # real noise, no reference
                noisy_list.append(reference)
                clean_list.append(None)
            names.append(Path(info.path).stem + ("_holdout" if region is not None else ""))
        return PairedImageDataset(noisy_list, clean_list, names)


def cut(cube: np.ndarray, region: slice, axis: str) -> np.ndarray:
    return cube[:, :, region] if axis == "width" else cube[:, region, :]


def _load_region(reader: CubeReader, info: CubeInfo, region: slice, axis: str) -> np.ndarray:
    return cut(reader(info)[0], region, axis)
