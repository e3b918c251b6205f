"""Benchmark submissions: SIDD sRGB blocks and DND sRGB bundles, in the servers' formats.

SIDD (https://abdokamel.github.io/sidd/): ``SubmitSrgb.mat`` with the single key
``DenoisedBlocksSrgb``, uint8 of the same (N, K, H, W, 3) shape as ``BenchmarkNoisyBlocksSrgb``
((40, 32, 256, 256, 3) for the real set); and the CSV of the current replacement competition,
``SubmitSrgb.csv`` with columns ``ID`` (the flat block index ``n * K + k``) and ``BLOCK`` (base64
of the block's uint8 bytes in (H, W, 3) C order).

DND (https://noise.visinf.tu-darmstadt.de/): one ``%04d.mat`` per image holding ``Idenoised``
(a 1 x boxes cell of float32 (512, 512, 3) denoised crops in [0, 1], box order of ``info.mat``),
``israw`` = false and ``eval_version`` = "1.0", the files the official ``bundle_submissions_srgb``
produces. Crops are kept as float32 clipped to [0, 1], not rounded to 8 bits.

``SubmissionWriter`` is what eval.py feeds every denoised image: the submission of the data set,
if it is a benchmark set.
"""

from __future__ import annotations

import base64
import csv
import warnings
from pathlib import Path

import numpy as np
import scipy.io
import torch

from denoise.data.datamodules.dnd import DNDDataModule
from denoise.data.datamodules.sidd_blocks import SIDDBenchmarkDataModule
from denoise.errors import DataError

SIDD_MAT, SIDD_KEY, SIDD_CSV = "SubmitSrgb.mat", "DenoisedBlocksSrgb", "SubmitSrgb.csv"
DND_EVAL_VERSION = "1.0"
SUBMISSIONS = ("auto", "sidd", "dnd", "none")


def block_to_base64(block: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(block, dtype=np.uint8).tobytes()).decode("ascii")


def write_sidd_submission(blocks: np.ndarray, folder: str | Path) -> dict[str, Path]:
    """``SubmitSrgb.mat`` and ``SubmitSrgb.csv`` of uint8 (N, K, H, W, 3) ``blocks`` in ``folder``."""
    blocks = np.asarray(blocks)
    if blocks.dtype != np.uint8 or blocks.ndim != 5 or blocks.shape[-1] != 3:
        raise DataError(
            f"SIDD submission: expected uint8 blocks (N, K, H, W, 3), got {blocks.dtype} {blocks.shape}"
        )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    mat_path, csv_path = folder / SIDD_MAT, folder / SIDD_CSV
    scipy.io.savemat(mat_path, {SIDD_KEY: blocks}, do_compression=True)
    n, k = blocks.shape[:2]
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "BLOCK"])
        for i in range(n):
            for j in range(k):
                writer.writerow([i * k + j, block_to_base64(blocks[i, j])])
    return {"mat": mat_path, "csv": csv_path}


class SIDDSubmission:
    """Collects denoised blocks by their (n, k) index, then writes the submission files."""

    def __init__(self, grid: tuple[int, int] | None = None):
        self.grid = grid
        self.blocks: dict[tuple[int, int], np.ndarray] = {}

    def add(self, index: tuple[int, int], block: np.ndarray) -> None:
        """``block``: (H, W, 3) uint8."""
        block = np.asarray(block)
        if block.dtype != np.uint8 or block.ndim != 3 or block.shape[-1] != 3:
            raise DataError(
                f"SIDD submission: block {index} is {block.dtype} {block.shape}; expected uint8 (H, W, 3)"
            )
        self.blocks[(int(index[0]), int(index[1]))] = block

    def write(self, folder: str | Path) -> dict[str, Path]:
        if not self.blocks:
            raise DataError("SIDD submission: no blocks were denoised")
        grid = self.grid or tuple(max(key[axis] for key in self.blocks) + 1 for axis in (0, 1))
        shape = next(iter(self.blocks.values())).shape
        blocks = np.zeros((*grid, *shape), dtype=np.uint8)
        for (n, k), block in self.blocks.items():
            blocks[n, k] = block
        missing = grid[0] * grid[1] - len(self.blocks)
        if missing:
            warnings.warn(
                f"SIDD submission: {missing} of {grid[0] * grid[1]} blocks were not denoised (left 0)",
                stacklevel=2,
            )
        return write_sidd_submission(blocks, folder)


def write_dnd_bundle(folder: str | Path, image: int, crops: list[np.ndarray]) -> Path:
    """``%04d.mat`` (``image`` 0-based): ``Idenoised`` (a cell of the crops), ``israw``, ``eval_version``."""
    cell = np.empty((len(crops),), dtype=object)
    for i, crop in enumerate(crops):
        crop = np.asarray(crop)
        if crop.ndim != 3 or crop.shape[-1] != 3:
            raise DataError(
                f"DND submission: crop {i + 1} of image {image + 1} has shape {crop.shape}; "
                "expected (H, W, 3)"
            )
        cell[i] = np.clip(crop, 0, 1).astype(np.float32)
    path = Path(folder) / f"{image + 1:04d}.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"Idenoised": cell, "israw": False, "eval_version": DND_EVAL_VERSION})
    return path


class DNDSubmission:
    """Collects denoised crops by (image, box) index and writes each image's bundle as soon as
    the next image starts (the DND datamodule yields boxes image by image), so at most one
    image's crops are held in memory."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.current: int | None = None
        self.crops: dict[int, np.ndarray] = {}
        self.written: list[Path] = []

    def add(self, index: tuple[int, int], crop: np.ndarray) -> None:
        """``crop``: (H, W, 3) float in [0, 1]."""
        image, box = int(index[0]), int(index[1])
        if self.current is not None and image != self.current:
            self._flush()
        self.current = image
        self.crops[box] = np.asarray(crop)

    def _flush(self) -> None:
        if self.current is None or not self.crops:
            return
        boxes = sorted(self.crops)
        if boxes != list(range(len(boxes))):
            raise DataError(
                f"DND submission: image {self.current + 1} has boxes {[b + 1 for b in boxes]}; "
                f"expected 1..{len(boxes)} in order"
            )
        self.written.append(write_dnd_bundle(self.folder, self.current, [self.crops[b] for b in boxes]))
        self.crops = {}

    def close(self) -> list[Path]:
        """Write the last image's bundle; returns every bundle written."""
        self._flush()
        return self.written


class SubmissionWriter:
    """The benchmark submission for the data set, if it is one (``kind``: one of SUBMISSIONS)."""

    def __init__(self, kind: str, datamodule, folder: Path):
        if kind == "auto":
            kind = (
                "sidd" if isinstance(datamodule, SIDDBenchmarkDataModule)
                else "dnd" if isinstance(datamodule, DNDDataModule)
                else "none"
            )
        self.kind, self.folder = kind, folder
        # The grid of blocks is the one of the denoised indices (a subset with data.blocks).
        self.sidd = SIDDSubmission() if kind == "sidd" else None
        self.dnd = DNDSubmission(folder) if kind == "dnd" else None

    def add(self, index: tuple[int, ...] | None, name: str, estimate: torch.Tensor, denoised: torch.Tensor) -> None:
        """``estimate``: the 8-bit levels of the (C, H, W) image (SIDD); ``denoised``: its float values (DND)."""
        if self.kind == "none":
            return
        if index is None or len(index) != 2:
            raise DataError(f"{name}: a {self.kind} submission needs each image's (n, k) index from the datamodule")
        if self.sidd is not None:
            self.sidd.add(index, np.round(estimate.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8))
        else:
            self.dnd.add(index, denoised.clamp(0, 1).permute(1, 2, 0).numpy())

    def close(self) -> dict | None:
        """Write what is left; what was written, for results.json (None without a submission)."""
        if self.sidd is not None:
            return {name: str(path) for name, path in self.sidd.write(self.folder).items()}
        if self.dnd is not None:
            return {"bundles": len(self.dnd.close()), "folder": str(self.folder)}
        return None
