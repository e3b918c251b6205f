"""SIDD validation and benchmark blocks: (N, K, H, W, 3) uint8 arrays in MATLAB files.

Official files: ``ValidationNoisyBlocksSrgb.mat`` / ``ValidationGtBlocksSrgb.mat`` and
``BenchmarkNoisyBlocksSrgb.mat``, each with a key equal to its stem and blocks of
(40, 32, 256, 256, 3); any (N, K, H, W, 3) is accepted. Both validation keys may also sit in one
file. Blocks are numbered row-major: block ``i`` is ``[n, k] = [i // K, i % K]``; a batch carries
``index`` = (n, k) so predictions can be written back in the submission layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
from torch.utils.data import Dataset

from denoise.data.datamodules.base import EvaluationDataModule
from denoise.data.datasets.images import PairedImageDataset
from denoise.data.formats.matfile import mat_shapes, read_mat
from denoise.errors import ConfigError, DataError
from denoise.rules import checked, integer, optional

SIDD_URL = "https://abdokamel.github.io/sidd/"
VAL_NOISY, VAL_GT = "ValidationNoisyBlocksSrgb", "ValidationGtBlocksSrgb"
BENCH_NOISY = "BenchmarkNoisyBlocksSrgb"


def search_dirs(root: str | Path, subfolders: Sequence[str]) -> list[Path]:
    """``root``, its ``subfolders``, and the same around the SIDD root when ``root`` is a Medium folder."""
    root = Path(root)
    bases = [root]
    if root.name == "Data":
        bases += [root.parent, root.parent.parent]
    elif root.name == "SIDD_Medium_Srgb":
        bases += [root.parent]
    dirs = []
    for base in bases:
        dirs += [base] + [base / sub for sub in subfolders]
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def find_block_file(dirs: Sequence[Path], key: str) -> Path | None:
    """``<key>.mat`` in the first of ``dirs`` that has it, else any .mat there holding ``key``."""
    for folder in dirs:
        named = folder / f"{key}.mat"
        if named.is_file():
            return named
    for folder in dirs:
        for candidate in sorted(folder.glob("*.mat")):
            try:
                if key in mat_shapes(candidate):
                    return candidate
            except DataError:
                continue
    return None


def read_blocks(path: str | Path, key: str) -> np.ndarray:
    """The (N, K, H, W, 3) uint8 blocks of ``key``; DataError for any other shape or dtype."""
    blocks = read_mat(path, key)
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise DataError(
            f"{path}: {key} is {blocks.dtype} of shape {blocks.shape}; expected uint8 blocks (N, K, H, W, 3) "
            f"as in the official SIDD files (see {SIDD_URL})"
        )
    return blocks


class BlockSet:
    """The first ``limit`` blocks of an (N, K, H, W, 3) array, flat, with their (n, k) indices."""

    def __init__(self, blocks: np.ndarray, limit: int | None):
        n, k = blocks.shape[:2]
        count = n * k if limit is None else min(int(limit), n * k)
        self.grid = (n, k)
        flat = blocks.reshape(n * k, *blocks.shape[2:])
        self.flat = flat[:count].copy() if count < len(flat) else flat  # a copy frees the unused blocks
        self.indices = [divmod(i, k) for i in range(count)]

    def __len__(self) -> int:
        return len(self.flat)

    def chw(self) -> list[np.ndarray]:
        """Per-block (3, H, W) uint8 views."""
        return [block.transpose(2, 0, 1) for block in self.flat]

    @property
    def names(self) -> list[str]:
        return [f"{n:02d}_{k:02d}" for n, k in self.indices]


def validation_blocks(
    root: str | Path | None,
    limit: int | None = None,
    noisy_file: str | None = None,
    gt_file: str | None = None,
    setting: str = "data.root",
) -> Dataset:
    """The SIDD validation blocks (first ``limit``) as a dataset of noisy/clean pairs with indices."""
    if limit is not None and (isinstance(limit, bool) or int(limit) < 0):
        raise ConfigError(f"the number of validation blocks must be null (all) or >= 0, got {limit!r}")
    dirs = search_dirs(root, ["SIDD_Validation"]) if root is not None else []
    noisy_path = Path(noisy_file) if noisy_file else find_block_file(dirs, VAL_NOISY)
    if noisy_path is None or not noisy_path.is_file():
        where = noisy_file or f"{setting}={root} (or its SIDD_Validation/ subfolder)"
        raise DataError(
            f"no SIDD validation blocks: expected {VAL_NOISY}.mat and {VAL_GT}.mat (uint8 N x K x H x W x 3) in "
            f"{where}; SIDD is documented at {SIDD_URL}"
        )
    noisy = BlockSet(read_blocks(noisy_path, VAL_NOISY), limit)
    gt_path = Path(gt_file) if gt_file else (
        noisy_path if VAL_GT in mat_shapes(noisy_path) else find_block_file([noisy_path.parent, *dirs], VAL_GT)
    )
    if gt_path is None or not gt_path.is_file():
        raise DataError(f"{noisy_path}: no ground truth {VAL_GT}.mat next to it; expected both SIDD validation files")
    clean = BlockSet(read_blocks(gt_path, VAL_GT), limit)
    if noisy.flat.shape != clean.flat.shape or noisy.grid != clean.grid:
        raise DataError(
            f"{gt_path}: ground-truth blocks {clean.grid + clean.flat.shape[1:]} do not match the noisy blocks "
            f"{noisy.grid + noisy.flat.shape[1:]} of {noisy_path}"
        )
    return PairedImageDataset(noisy.chw(), clean.chw(), noisy.names, noisy.indices)


class SIDDBlocksDataModule(EvaluationDataModule):
    """The settings both SIDD block sets share: where the files are and how many blocks to read."""

    FILES = ""  # the files data.root must hold, for the error line when neither place is given

    @checked("data.")
    def __init__(
        self,
        root: str | None = None,
        blocks: Annotated[int | None, optional(integer(0))] = None,  # the first N blocks (row-major); null: all
        noisy_file: str | None = None,  # an explicit path, instead of the search under root
        num_workers: int = 0,
        **training_keys,
    ):
        super().__init__(num_workers, **training_keys)
        self.root, self.blocks, self.noisy_file = root, blocks, noisy_file
        if root is None and noisy_file is None:
            raise ConfigError(
                f"data.root is not set: pass data.root=/path/to/SIDD holding {self.FILES} (SIDD: {SIDD_URL})"
            )


class SIDDValidationDataModule(SIDDBlocksDataModule):
    """``data=sidd_val``: the SIDD validation blocks, noisy and ground truth, for evaluation."""

    FILES = f"{VAL_NOISY}.mat and {VAL_GT}.mat"

    # gt_file: an explicit path of the ground truth, instead of the search next to the noisy blocks
    # and under root; the other settings are SIDDBlocksDataModule's.
    def __init__(self, *, gt_file: str | None = None, **settings):
        super().__init__(**settings)
        self.gt_file = gt_file

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is None:
            self.test_set = validation_blocks(self.root, self.blocks, self.noisy_file, self.gt_file)
            self.in_channels = 3


class SIDDBenchmarkDataModule(SIDDBlocksDataModule):
    """``data=sidd_bench``: the SIDD benchmark blocks (no ground truth), for writing a submission."""

    FILES = f"{BENCH_NOISY}.mat"

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is not None:
            return
        path = Path(self.noisy_file) if self.noisy_file else find_block_file(
            search_dirs(self.root, ["SIDD_Benchmark", "SIDD_Benchmark_Data"]), BENCH_NOISY
        )
        if path is None or not path.is_file():
            raise DataError(
                f"no SIDD benchmark blocks: expected {BENCH_NOISY}.mat (uint8 N x K x H x W x 3) in "
                f"{self.noisy_file or f'data.root={self.root}'}; SIDD is documented at {SIDD_URL}"
            )
        blocks = BlockSet(read_blocks(path, BENCH_NOISY), self.blocks)
        self.test_set = PairedImageDataset(blocks.chw(), None, blocks.names, blocks.indices)
        self.in_channels = 3
