"""MATLAB ``.mat`` files, v5 (scipy) and v7.3 (HDF5, h5py), read in MATLAB's axis order.

h5py sees a v7.3 array with its axes reversed (MATLAB stores column-major): an ICVL cube saved
in MATLAB as 1392 x 1300 x 31 comes out of h5py as (31, 1300, 1392). :func:`read_mat` reverses
them back, so both versions give the same array for the same MATLAB variable.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from denoise.errors import DataError

_NUMERIC_CLASSES = {"double", "single", "logical", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                    "int64", "uint64"}


def is_v73(path: str | Path) -> bool:
    """True for MATLAB v7.3 (HDF5) files."""
    return h5py.is_hdf5(str(path))


def mat_shapes(path: str | Path) -> dict[str, tuple[int, ...] | None]:
    """Variable name -> MATLAB-order shape (None for structs, cells and other non-arrays)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such .mat file")
    try:
        if is_v73(path):
            with h5py.File(path, "r") as f:
                return {
                    name: tuple(reversed(obj.shape)) if _numeric_dataset(obj) else None
                    for name, obj in f.items() if not name.startswith("#")
                }
        return {
            name: tuple(shape) if kind in _NUMERIC_CLASSES else None
            for name, shape, kind in scipy.io.whosmat(str(path)) if not name.startswith("__")
        }
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({_first_line(error)})") from error


def mat_keys(path: str | Path) -> list[str]:
    """The variable names of a .mat file (without scipy's ``__header__`` entries)."""
    return list(mat_shapes(path))


def choose_key(path: str | Path, key: str | None, candidates: Sequence[str] = (), setting: str = "data.key") -> str:
    """``key`` if the file has it; else the first of ``candidates`` it has; else its only array.

    A missing key raises DataError listing the keys the file does have.
    """
    shapes = mat_shapes(path)
    if key is not None:
        if key not in shapes:
            raise DataError(f"{path}: no variable {key!r} (it has {_listing(shapes)}); set {setting} to one of them")
        return key
    for name in candidates:
        if shapes.get(name) is not None:
            return name
    arrays = [name for name, shape in shapes.items() if shape is not None]
    if len(arrays) == 1:
        return arrays[0]
    expected = f"none of {', '.join(candidates)} and " if candidates else ""
    raise DataError(
        f"{path}: {expected}{'no' if not arrays else 'more than one'} array to choose from "
        f"(it has {_listing(shapes)}); set {setting}"
    )


def read_mat(path: str | Path, key: str) -> np.ndarray:
    """The array ``key`` of a .mat file in MATLAB's axis order."""
    path = Path(path)
    shapes = mat_shapes(path)
    if shapes.get(key) is None:
        what = "is not a numeric array" if key in shapes else "is missing"
        raise DataError(f"{path}: variable {key!r} {what} (it has {_listing(shapes)})")
    try:
        if is_v73(path):
            with h5py.File(path, "r") as f:
                return np.asarray(f[key][()]).transpose()
        return np.asarray(scipy.io.loadmat(str(path), variable_names=[key])[key])
    except Exception as error:
        raise DataError(f"{path}: cannot read variable {key!r} ({_first_line(error)})") from error


def _numeric_dataset(obj) -> bool:
    return isinstance(obj, h5py.Dataset) and obj.dtype.kind in "uifb" and obj.attrs.get("MATLAB_class") != b"cell"


def _listing(shapes: dict[str, tuple[int, ...] | None]) -> str:
    if not shapes:
        return "no variables"
    return ", ".join(f"{name} {'x'.join(map(str, shape))}" if shape else f"{name} (not an array)"
                     for name, shape in shapes.items())


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
