"""``data=folder``: a folder of noisy images, optionally a folder of clean references with the same names.

Formats: PNG (8/16 bit), JPEG, TIFF, ``.npy``; any channel count (all images alike). Three uses:

- ``noisy_dir`` only: self-supervised training on the noisy images; no validation metric (no
  reference); test/predict yield every noisy image.
- ``noisy_dir`` + ``clean_dir``: training on the noisy images of the training split, validation
  against the clean references of the validation split (``val_files`` by name, or the last
  ``val_fraction`` of the sorted names); ``train_on_val`` also trains on the validation images
  (the fully self-supervised "train on the test set" setting).
- ``clean_dir`` only, with a synthetic ``noise``: crops get fresh noise at every step;
  validation images get one fixed (seeded) realisation each.

Names are matched by file stem (``a.png`` matches ``a.tif``); every check (missing partner,
different size, corrupt or truncated file, too small for the crop) happens in ``setup``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

from denoise.data.checks import check_crop_fits
from denoise.data.datamodules.base import TrainingDataModule, is_synthetic
from denoise.data.datasets.images import ImageFile, NoisyCropDataset, PairedImageDataset, lazy_fixed_noisy
from denoise.data.formats.image_files import IMAGE_SUFFIXES, ImageInfo, list_images, probe_images
from denoise.errors import ConfigError, DataError
from denoise.rules import checked, fraction, integer

# A .mat file needs the name of its variable, which data=folder has no setting for.
FOLDER_SUFFIXES = tuple(suffix for suffix in IMAGE_SUFFIXES if suffix != ".mat")


def _folder(value: str | None, key: str) -> Path | None:
    if value is None:
        return None
    folder = Path(value)
    if not folder.is_dir():
        raise DataError(
            f"data.{key}={value}: {'not a folder' if folder.exists() else 'no such folder'}; expected a folder of "
            f"{'/'.join(s.lstrip('.') for s in FOLDER_SUFFIXES)} images"
        )
    return folder


def _by_stem(folder: Path, key: str, skip_bad: bool) -> dict[str, tuple[Path, ImageInfo]]:
    files = list_images(folder, FOLDER_SUFFIXES)
    if not files:
        raise DataError(f"data.{key}={folder}: no images (expected {', '.join(FOLDER_SUFFIXES)} files)")
    stems: dict[str, tuple[Path, ImageInfo]] = {}
    for path, info in probe_images(files, skip_bad):
        if path.stem in stems:
            raise DataError(f"data.{key}={folder}: {stems[path.stem][0].name} and {path.name} have the same name")
        stems[path.stem] = (path, info)
    return stems


def _few(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def match_pairs(
    noisy: dict[str, tuple[Path, ImageInfo]], clean: dict[str, tuple[Path, ImageInfo]], noisy_dir: Path, clean_dir: Path
) -> None:
    """DataError unless both folders hold the same names with the same sizes."""
    only_noisy, only_clean = set(noisy) - set(clean), set(clean) - set(noisy)
    if only_noisy:
        raise DataError(f"data.clean_dir={clean_dir}: no clean image for {_few(only_noisy)} of data.noisy_dir (names must match)")
    if only_clean:
        raise DataError(f"data.noisy_dir={noisy_dir}: no noisy image for {_few(only_clean)} of data.clean_dir (names must match)")
    for stem in sorted(noisy):
        (npath, ninfo), (cpath, cinfo) = noisy[stem], clean[stem]
        if ninfo.shape != cinfo.shape:
            raise DataError(
                f"{cpath}: clean image is {cinfo.channels}x{cinfo.height}x{cinfo.width} but the noisy {npath.name} "
                f"is {ninfo.channels}x{ninfo.height}x{ninfo.width} (C x H x W)"
            )


class FolderDataModule(TrainingDataModule):
    @checked("data.")
    def __init__(
        self,
        noise: Callable | None = None,
        noisy_dir: str | None = None,
        clean_dir: str | None = None,
        # The last 10% of the sorted names validate (only with clean references)...
        val_fraction: Annotated[float, fraction(high_open=True)] = 0.1,
        val_files: Sequence[str] | None = None,  # ...or these names: [a.png, b.png]
        train_on_val: bool = False,  # also train on the validation images (self-supervised "dagger" setting)
        crop_size: int = 128,  # a multiple of model.train_pd.factor
        batch_size: int = 8,
        num_workers: int = 2,
        epoch_length: int = 800,  # crops per epoch; training length is trainer.max_steps
        augment: bool = True,  # flips/rotations
        crops_per_image: Annotated[int, integer(1)] = 1,  # crops cut from each decoded image before reading another
        skip_bad: bool = False,  # skip unreadable / too small images with a warning instead of stopping
        seed: int = 0,  # seeds the fixed validation noise (clean-only folders)
    ):
        super().__init__(noise, crop_size, batch_size, num_workers, epoch_length, augment, seed)
        if noisy_dir is None and clean_dir is None:
            raise ConfigError("data.noisy_dir is not set: pass data.noisy_dir=/path/to/noisy (and optionally data.clean_dir)")
        if noisy_dir is not None:
            self.require_real_noise(f"the images of data.noisy_dir={noisy_dir}")
        elif not is_synthetic(self.noise):
            raise ConfigError(
                f"data.clean_dir={clean_dir} without data.noisy_dir needs synthetic noise: choose noise=gaussian, "
                f"noise=poisson_gaussian, ..."
            )
        self.noisy_dir, self.clean_dir = noisy_dir, clean_dir
        self.val_fraction, self.val_files, self.train_on_val = float(val_fraction), val_files, bool(train_on_val)
        self.crops_per_image, self.skip_bad = crops_per_image, skip_bad

    def _split(self, stems: list[str], has_reference: bool) -> tuple[list[str], list[str]]:
        if not has_reference:
            return stems, []
        if self.val_files:
            wanted = [Path(name).stem for name in self.val_files]
            unknown = [name for name in wanted if name not in stems]
            if unknown:
                raise DataError(f"data.val_files: {_few(unknown)} not among the images ({_few(stems)})")
            val = wanted
        else:
            count = math.ceil(self.val_fraction * len(stems)) if self.val_fraction > 0 else 0
            val = stems[len(stems) - count :] if count else []
        train = stems if self.train_on_val else [s for s in stems if s not in val]
        if not train:
            raise ConfigError(
                f"data.val_fraction / data.val_files leave no training image of {len(stems)}; lower them or set "
                f"data.train_on_val=true"
            )
        return train, val

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is None:
            self._scan()
        # eval.py / predict.py (stage test / predict) need no training crops: images smaller
        # than data.crop_size are fine there.
        if stage in ("test", "predict") or self.train_set is not None:
            return
        images, noisy, clean = self._images, self._noisy, self._clean
        train, val = self._split(sorted(images), clean is not None)
        train = self._fitting(train, images)
        synthetic = noisy is None
        self.train_set = NoisyCropDataset(
            [ImageFile(*images[s]) for s in train], self.crop_size, self.epoch_length, self.augment,
            names=[str(images[s][0]) for s in train], noise=self.noise if synthetic else None,
            crops_per_image=self.crops_per_image, skip_bad=self.skip_bad,
        )
        self.val_set = self._evaluation_set(val, noisy, clean) if val else None

    def _scan(self) -> None:
        """Read the folders' headers, check them, and build the evaluation set of every image."""
        noisy_dir, clean_dir = _folder(self.noisy_dir, "noisy_dir"), _folder(self.clean_dir, "clean_dir")
        noisy = _by_stem(noisy_dir, "noisy_dir", self.skip_bad) if noisy_dir else None
        clean = _by_stem(clean_dir, "clean_dir", self.skip_bad) if clean_dir else None
        if noisy is not None and clean is not None:
            match_pairs(noisy, clean, noisy_dir, clean_dir)
        images = noisy if noisy is not None else clean
        channels = {info.channels for _, info in images.values()}
        if len(channels) > 1:
            first = {}
            for path, info in images.values():
                first.setdefault(info.channels, path.name)
            raise DataError(
                f"data.{'noisy_dir' if noisy is not None else 'clean_dir'}: images differ in channel count ("
                + ", ".join(f"{name} has {c}" for c, name in sorted(first.items())) + "); convert them to one"
            )
        self.in_channels = channels.pop()
        self._images, self._noisy, self._clean = images, noisy, clean
        self.test_set = self._evaluation_set(sorted(images), noisy, clean)

    def _fitting(self, stems: list[str], images: dict[str, tuple[Path, ImageInfo]]) -> list[str]:
        fitting = []
        for stem in stems:
            path, info = images[stem]
            try:
                check_crop_fits(str(path), info.height, info.width, self.crop_size)
                fitting.append(stem)
            except DataError:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping {path}: smaller than data.crop_size={self.crop_size}", stacklevel=2)
        if not fitting:
            raise DataError(f"no training image is at least data.crop_size={self.crop_size} pixels on each side")
        return fitting

    def _evaluation_set(self, stems: list[str], noisy: dict | None, clean: dict | None) -> PairedImageDataset:
        index = {stem: i for i, stem in enumerate(sorted(noisy or clean))}
        if noisy is not None:
            noisy_sources = [ImageFile(*noisy[s]) for s in stems]
        else:  # one fixed noise realisation per image, the same in every run
            noisy_sources = [lazy_fixed_noisy(ImageFile(*clean[s]), self.noise, self.seed, index[s]) for s in stems]
        clean_sources = [ImageFile(*clean[s]) for s in stems] if clean is not None else None
        return PairedImageDataset(noisy_sources, clean_sources, stems)
