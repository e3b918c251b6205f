"""``data=sidd``: self-supervised training on SIDD Medium sRGB noisy images, validation on SIDD blocks.

Layout (https://abdokamel.github.io/sidd/)::

    <root>/SIDD_Medium_Srgb/Data/<NNNN>_<scene>_<phone>_<ISO>_<shutter>_<temp>_<L|N|H>/
        <NNNN>_NOISY_SRGB_010.PNG  <NNNN>_NOISY_SRGB_011.PNG  <NNNN>_GT_SRGB_010.PNG  ...
    <root>/ValidationNoisyBlocksSrgb.mat, ValidationGtBlocksSrgb.mat   (or <root>/SIDD_Validation/)

``root`` may also point at ``SIDD_Medium_Srgb`` or at ``Data``. Training reads the 320 noisy
images only (the ground truth is never used), lazily: each crop decodes one image, so memory
holds one image per worker, never the data set. When ``scripts/prepare_sidd.py`` has cut the
images into a patch cache big enough for the crop, the patches are read instead (much faster).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from denoise.data.checks import check_crop_fits
from denoise.data.datamodules.base import TrainingDataModule
from denoise.data.datamodules.sidd_blocks import SIDD_URL, validation_blocks
from denoise.data.datasets.images import ImageFile, NoisyCropDataset
from denoise.data.datasets.sidd_patches import default_patch_dir, read_manifest
from denoise.data.formats.image_files import ImageInfo, probe_images
from denoise.errors import ConfigError, DataError
from denoise.rules import checked, integer, optional

log = logging.getLogger(__name__)

SCENE_DIR = re.compile(r"^\d{4}_.+_[LNH]$")
NOISY_FILE = re.compile(r"^(\d{4})_NOISY_SRGB_(\d{3})\.png$", re.IGNORECASE)
LAYOUT = (
    "<root>/SIDD_Medium_Srgb/Data/<NNNN>_<scene>_<phone>_<ISO>_<shutter>_<temp>_<L|N|H>/"
    "<NNNN>_NOISY_SRGB_010.PNG (and _011.PNG, with matching _GT_SRGB_ files)"
)
PATCH_MODES = ("auto", "always", "never")


def _noisy_files(scene: Path) -> list[Path]:
    return sorted(p for p in scene.iterdir() if NOISY_FILE.match(p.name))


def _scenes(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and SCENE_DIR.match(p.name))


def find_data_dir(root: str | Path) -> Path:
    """The ``Data`` folder of SIDD Medium sRGB under ``root``; DataError with the expected layout."""
    root = Path(root)
    for candidate in (root / "SIDD_Medium_Srgb" / "Data", root / "Data", root):
        if candidate.is_dir() and any(_noisy_files(scene) for scene in _scenes(candidate)):
            return candidate
    state = "does not exist" if not root.exists() else "holds no SIDD Medium sRGB images"
    raise DataError(
        f"data.root={root} {state}; expected {LAYOUT} (data.root may also point at SIDD_Medium_Srgb or Data); "
        f"SIDD is documented at {SIDD_URL}"
    )


def medium_images(data_dir: str | Path) -> list[tuple[Path, Path | None]]:
    """(noisy, ground truth or None) for every noisy image of the ``Data`` folder, sorted."""
    pairs = []
    for scene in _scenes(Path(data_dir)):
        for noisy in _noisy_files(scene):
            number, shot = NOISY_FILE.match(noisy.name).groups()
            gt = [p for p in scene.iterdir() if p.name.upper() == f"{number}_GT_SRGB_{shot}.PNG"]
            pairs.append((noisy, gt[0] if gt else None))
    return pairs


class SIDDDataModule(TrainingDataModule):
    """SIDD Medium sRGB noisy crops for training; SIDD validation blocks for validation."""

    @checked("data.")
    def __init__(
        self,
        noise: Callable | None = None,  # SIDD noise is real: noise=none
        root: str | None = None,
        crop_size: int = 640,  # a multiple of model.train_pd.factor (TBSN: 640 = 5 x 128)
        batch_size: int = 4,
        num_workers: int = 4,
        epoch_length: int = 4000,  # crops per epoch; training length is trainer.max_steps
        augment: bool = False,  # flips/rotations; off in the TBSN recipe
        val_blocks: Annotated[int | None, optional(integer(0))] = None,  # the first N blocks only; null: all 1280
        val_dir: str | None = None,  # where the validation .mat files are, when not under root
        patch_dir: str | None = None,  # patch cache; None: SIDD_Medium_Srgb/Patches_<size>_o<overlap> if there
        use_patches: str | bool = "auto",  # auto: when complete and big enough | always | never
        crops_per_image: Annotated[int, integer(1)] = 1,  # crops cut from each decoded image before reading another
        skip_bad: bool = False,  # skip unreadable images with a warning instead of stopping
        seed: int = 0,
    ):
        super().__init__(noise, crop_size, batch_size, num_workers, epoch_length, augment, seed)
        self.require_real_noise("SIDD images")
        if root is None:
            raise ConfigError(f"data.root is not set: pass data.root=/path/to/SIDD with {LAYOUT}; SIDD: {SIDD_URL}")
        use_patches = {True: "always", False: "never"}.get(use_patches, use_patches)
        if use_patches not in PATCH_MODES:
            raise ConfigError(f"data.use_patches={use_patches!r}: expected one of {', '.join(PATCH_MODES)}")
        self.root, self.val_blocks, self.val_dir = Path(root), val_blocks, val_dir
        self.patch_dir, self.use_patches = patch_dir, use_patches
        self.crops_per_image, self.skip_bad = crops_per_image, skip_bad
        self.in_channels = 3

    def _patch_sources(self, data_dir: Path) -> list[tuple[Path, ImageInfo]] | None:
        """Patches of the smallest complete cache at least ``crop_size`` big, or None (full images)."""
        if self.use_patches == "never":
            return None
        if self.patch_dir is not None and not Path(self.patch_dir).is_dir():
            raise DataError(f"data.patch_dir={self.patch_dir} does not exist; run scripts/prepare_sidd.py --out {self.patch_dir}")
        folders = [Path(self.patch_dir)] if self.patch_dir else sorted(default_patch_dir(data_dir).parent.glob("Patches_*"))
        usable, problems = [], []
        for folder in folders:
            manifest = read_manifest(folder)
            if manifest is None or not manifest.get("complete"):
                problems.append(f"the patch cache {folder} is incomplete (rerun scripts/prepare_sidd.py to finish it)")
            elif manifest["size"] < self.crop_size:
                problems.append(f"the patches of {folder} ({manifest['size']}px) are smaller than data.crop_size={self.crop_size}")
            else:
                usable.append((manifest["size"], str(folder), manifest))
        if not usable:
            if self.use_patches == "always":
                reason = "; ".join(problems) or f"there is no patch cache next to {data_dir}"
                raise DataError(f"data.use_patches=always but {reason}; run scripts/prepare_sidd.py --root {self.root}")
            if problems:
                warnings.warn("; ".join(problems) + "; reading the full SIDD images", stacklevel=2)
            return None
        size, folder, manifest = min(usable, key=lambda item: item[:2])
        folder = Path(folder)
        noisy = [entry for entry in manifest["patches"] if entry.get("kind", "noisy") == "noisy"]
        log.info(f"SIDD: training on {len(noisy)} cached {size}px patches from {folder}")
        return [
            (folder / e["file"], ImageInfo(str(folder / e["file"]), "png", "uint8", 3, e["height"], e["width"]))
            for e in noisy
        ]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        data_dir = find_data_dir(self.root)
        sources = self._patch_sources(data_dir)
        if sources is None:
            sources = probe_images([noisy for noisy, _ in medium_images(data_dir)], self.skip_bad)
            log.info(f"SIDD: training on {len(sources)} noisy images of {data_dir}, read lazily")
        fitting = []
        for path, info in sources:
            if info.channels != 3:
                raise DataError(f"{path}: {info.channels} channels; SIDD sRGB images have 3")
            try:
                check_crop_fits(str(path), info.height, info.width, self.crop_size)
                fitting.append((path, info))
            except DataError:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipping {path}: smaller than data.crop_size={self.crop_size}", stacklevel=2)
        if not fitting:
            raise DataError(f"data.root={self.root}: no usable SIDD training image")
        self.train_set = NoisyCropDataset(
            [ImageFile(path, info) for path, info in fitting], self.crop_size, self.epoch_length, self.augment,
            names=[str(path) for path, _ in fitting], crops_per_image=self.crops_per_image, skip_bad=self.skip_bad,
        )
        if self.val_blocks != 0:
            try:
                self.val_set = validation_blocks(
                    self.val_dir or self.root, self.val_blocks,
                    setting="data.val_dir" if self.val_dir else "data.root",
                )
            except DataError as error:
                raise DataError(f"{error}; or set data.val_blocks=0 to train without validation") from error
