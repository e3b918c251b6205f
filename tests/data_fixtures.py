"""Tiny data sets written in exactly the on-disk formats of the real ones, for the tests.

Each writer takes a folder and returns what it wrote; the pixel content is random but the
layout, file names, MATLAB versions, keys, dtypes and axis orders are those of SIDD, DND, ICVL
and the QRNN3D test files, so the readers are tested against the real formats.
"""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import scipy.io
from PIL import Image

_MATLAB_CLASS = {np.dtype(t): t for t in ("uint8", "uint16", "int16", "int32", "uint32")}
_MATLAB_CLASS |= {np.dtype("float64"): "double", np.dtype("float32"): "single"}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_mat_v73(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """A MATLAB v7.3 file (HDF5 with MATLAB's 512-byte header) holding ``arrays`` in MATLAB order.

    As MATLAB does, each array is stored with its axes reversed, so h5py reads it transposed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, array in arrays.items():
            array = np.asarray(array)
            dataset = f.create_dataset(name, data=array.transpose())
            dataset.attrs["MATLAB_class"] = np.bytes_(_MATLAB_CLASS[array.dtype])
    _write_matlab_header(path)
    return path


def _write_matlab_header(path: Path) -> None:
    text = f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {time.strftime('%a %b %d %H:%M:%S %Y')} HDF5 schema 1.00 ."
    header = text.encode("ascii").ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\x00"))


def write_sidd_medium(
    root: str | Path, scenes: int = 2, size: tuple[int, int] = (96, 128), seed: int = 0
) -> list[Path]:
    """``root/SIDD_Medium_Srgb/Data/<scene>/`` with NOISY and GT PNGs 010 and 011; returns the noisy files."""
    rng, noisy_files = _rng(seed), []
    for s in range(scenes):
        number = f"{s + 1:04d}"
        scene = Path(root) / "SIDD_Medium_Srgb" / "Data" / f"{number}_{s + 1:03d}_S6_00100_00060_3200_{'LNH'[s % 3]}"
        scene.mkdir(parents=True, exist_ok=True)
        for shot in ("010", "011"):
            clean = rng.integers(40, 216, (*size, 3), dtype=np.uint8)
            noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(scene / f"{number}_NOISY_SRGB_{shot}.PNG")
            Image.fromarray(clean).save(scene / f"{number}_GT_SRGB_{shot}.PNG")
            noisy_files.append(scene / f"{number}_NOISY_SRGB_{shot}.PNG")
    return noisy_files


def sidd_blocks(n: int = 2, k: int = 3, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) uint8 blocks of shape (n, k, size, size, 3)."""
    rng = _rng(seed)
    clean = rng.integers(40, 216, (n, k, size, size, 3), dtype=np.uint8)
    noisy = np.clip(clean + rng.normal(0, 10, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean


def write_sidd_validation(folder: str | Path, n: int = 2, k: int = 3, size: int = 32, seed: int = 0) -> Path:
    """``ValidationNoisyBlocksSrgb.mat`` and ``ValidationGtBlocksSrgb.mat`` (MATLAB v5) in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    noisy, clean = sidd_blocks(n, k, size, seed)
    scipy.io.savemat(folder / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": noisy})
    scipy.io.savemat(folder / "ValidationGtBlocksSrgb.mat", {"ValidationGtBlocksSrgb": clean})
    return folder


def write_sidd_benchmark(folder: str | Path, n: int = 2, k: int = 3, size: int = 32, seed: int = 1) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    noisy, _ = sidd_blocks(n, k, size, seed)
    path = folder / "BenchmarkNoisyBlocksSrgb.mat"
    scipy.io.savemat(path, {"BenchmarkNoisyBlocksSrgb": noisy})
    return path


def write_dnd(
    root: str | Path, images: int = 2, boxes: int = 3, size: tuple[int, int] = (80, 96), box: int = 32, seed: int = 0
) -> list[np.ndarray]:
    """DND layout: ``info.mat`` (v7.3, ``info.boundingboxes``: a cell of per-image (boxes, 4) arrays of
    1-based [row0, col0, row1, col1]) and ``images_srgb/%04d.mat`` (v7.3, ``InoisySRGB`` float H x W x 3).

    Returns the images (H, W, 3) float32 so tests can compare crops.
    """
    rng, root = _rng(seed), Path(root)
    written = []
    root.mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "info.mat", "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        info = f.create_group("info")
        info.attrs["MATLAB_class"] = np.bytes_("struct")
        cell = info.create_dataset("boundingboxes", (1, images), dtype=h5py.ref_dtype)
        cell.attrs["MATLAB_class"] = np.bytes_("cell")
        for i in range(images):
            image = rng.random((*size, 3), dtype=np.float32)
            write_mat_v73(root / "images_srgb" / f"{i + 1:04d}.mat", {"InoisySRGB": image})
            written.append(image)
            tops = rng.integers(0, size[0] - box + 1, boxes)
            lefts = rng.integers(0, size[1] - box + 1, boxes)
            table = np.stack([tops + 1, lefts + 1, tops + box, lefts + box], axis=1).astype(np.float64)
            dataset = refs_group.create_dataset(f"b{i}", data=table.transpose())
            dataset.attrs["MATLAB_class"] = np.bytes_("double")
            cell[0, i] = dataset.ref
    _write_matlab_header(root / "info.mat")
    return written


def hsi_cube(height: int = 40, width: int = 48, bands: int = 8, seed: int = 0) -> np.ndarray:
    """A smooth positive (H, W, bands) float32 cube in [0.1, 0.9], like a normalised scene."""
    rng = _rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    spectra = rng.random((3, bands))
    maps = np.stack([np.sin(3 * x + 1) ** 2, np.cos(2 * y) ** 2, x * y], axis=-1)
    cube = maps @ spectra
    cube = 0.1 + 0.8 * (cube - cube.min()) / (cube.max() - cube.min())
    return cube.astype(np.float32)
