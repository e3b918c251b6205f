"""Hyperspectral cubes on disk: ``.mat`` (v5 and v7.3), ``.npy``, ``.tif``; axis order and normalisation.

Cubes come out as float32 (bands, H, W). Which axis holds the bands:

- ``data.layout: auto``: the axis strictly smaller than the other two if the first or last one is
  (ICVL 1392 x 1300 x 31: last; a (31, 512, 512) ``.npy``: first); otherwise the format's
  convention: MATLAB files are H x W x bands (in MATLAB's axis order, also for v7.3 files, which
  h5py would show reversed), TIFF follows its axes (pages = bands); ``.npy`` must then be told.
- ``data.layout: hwc`` / ``chw`` overrides.

A 2-D ``Y`` (bands x pixels, as in the Urban and Jasper Ridge unmixing files) is unfolded with the
file's ``nRow`` / ``nCol`` (pixels in column-major order).

Normalisation to [0, 1] (recorded in the run config as ``data.normalize``):
``minmax`` over the whole cube (ICVL), ``band_minmax`` per band, ``quantile`` per band between the
2% and 98% quantiles then clipped (Washington DC Mall), ``scale`` (divide by ``data.scale`` and
clip, e.g. 5000 for Jasper Ridge's nominal maximum), ``none`` (data already in [0, 1]).
Constant bands (AVIRIS water-absorption bands are often all 0) stay out of the ``minmax`` span
and get span 1 in the per-band methods: nothing is divided by zero.

Writing back (``cubes.py``, ``predict.py`` with a hyperspectral checkpoint): :func:`read_stored`
keeps the file's dtype and shape, :func:`bands_first` is a (bands, H, W) view of it,
:func:`to_stored` the inverse, and :func:`write_cube` writes the result in the input's format
through a temporary file and a rename.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import tifffile

from denoise.data.checks import check_finite
from denoise.data.formats.matfile import choose_key, is_v73, mat_shapes, read_mat
from denoise.errors import ConfigError, DataError

CUBE_KEYS = ("rad", "gt", "data", "Y", "DataCube", "cube", "hsi", "img")
AXIS_ORDERS = ("auto", "hwc", "chw")  # the choices of data.layout
NORMALIZATIONS = ("minmax", "band_minmax", "quantile", "scale", "none")
SUFFIXES = (".mat", ".npy", ".tif", ".tiff")


@dataclass(frozen=True)
class CubeInfo:
    path: str
    key: str | None
    axis_order: str  # hwc | chw | unfolded (2-D bands x pixels)
    bands: int
    height: int
    width: int


def _stored_shape(path: Path, key: str | None) -> tuple[str | None, tuple[int, ...], str]:
    """(key, shape as read, the format's own axis order)."""
    suffix = path.suffix.lower()
    if suffix == ".mat":
        key = choose_key(path, key, CUBE_KEYS)
        return key, mat_shapes(path)[key], "hwc"
    if suffix == ".npy":
        try:
            return None, np.load(path, mmap_mode="r", allow_pickle=False).shape, "ambiguous"
        except ValueError as error:
            raise DataError(f"{path}: not a readable .npy file ({error})") from error
    if suffix in (".tif", ".tiff"):
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
        except Exception as error:
            raise DataError(f"{path}: not a readable TIFF file ({error})") from error
        return None, shape, "hwc" if axes.endswith("S") else "chw"
    raise DataError(f"{path}: unsupported cube type {suffix!r}; expected {', '.join(SUFFIXES)}")


def _unfold_shape(path: Path, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(nRow, nCol) if a 2-D bands x pixels matrix comes with them in the file."""
    if path.suffix.lower() != ".mat" or len(shape) != 2:
        return None
    shapes = mat_shapes(path)
    if shapes.get("nRow") and shapes.get("nCol"):
        rows, cols = int(read_mat(path, "nRow").ravel()[0]), int(read_mat(path, "nCol").ravel()[0])
        if rows * cols == shape[1]:
            return rows, cols
    return None


def probe_cube(path: str | Path, key: str | None = None, axis_order: str = "auto") -> CubeInfo:
    """Band count and size of a cube without reading its samples (v5 .mat files list shapes in headers).

    ``axis_order`` (``data.layout``): where the bands are, ``auto`` to tell from the shape."""
    path = Path(path)
    if axis_order not in AXIS_ORDERS:
        raise ConfigError(f"data.layout={axis_order!r}: expected one of {', '.join(AXIS_ORDERS)}")
    if not path.is_file():
        raise DataError(f"{path}: no such cube file (data.files)")
    key, shape, convention = _stored_shape(path, key)
    if len(shape) == 2:
        unfold = _unfold_shape(path, shape)
        if unfold is not None:
            return CubeInfo(str(path), key, "unfolded", shape[0], *unfold)
        return CubeInfo(str(path), key, "hwc", 1, shape[0], shape[1])
    squeezed = tuple(n for n in shape if n != 1) if len(shape) > 3 else shape
    if len(squeezed) != 3:
        raise DataError(f"{path}: {key or 'array'} has shape {shape}; expected a 3-D cube (H, W, bands) or (bands, H, W)")
    if axis_order == "auto":
        if squeezed[0] < min(squeezed[1:]):
            axis_order = "chw"
        elif squeezed[2] < min(squeezed[:2]):
            axis_order = "hwc"
        elif convention == "ambiguous":
            raise DataError(f"{path}: cannot tell the band axis of shape {shape}; set data.layout=hwc or data.layout=chw")
        else:
            axis_order = convention
    if axis_order == "chw":
        return CubeInfo(str(path), key, "chw", *squeezed)
    return CubeInfo(str(path), key, "hwc", squeezed[2], squeezed[0], squeezed[1])


def read_stored(info: CubeInfo, key: str | None = None) -> np.ndarray:
    """The variable as stored: the file's own dtype, shape and axis order (writable)."""
    path = Path(info.path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        array = read_mat(path, key or info.key)
    elif suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    else:
        array = tifffile.imread(path)
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: {key or info.key or 'the array'} holds {array.dtype} samples; expected numbers")
    return array if array.flags.writeable else array.copy()


def bands_first(info: CubeInfo, array: np.ndarray) -> np.ndarray:
    """A (bands, H, W) view of a stored array: writing into it writes the stored array."""
    if info.axis_order == "unfolded":  # bands x pixels, pixels in MATLAB's column-major order
        view = array.reshape(info.bands, info.width, info.height).transpose(0, 2, 1)
    else:
        view = array.reshape(array.shape if array.ndim == 2 else tuple(n for n in array.shape if n != 1))
        if view.ndim == 2:
            view = view[None]
        elif info.axis_order == "hwc":
            view = view.transpose(2, 0, 1)
    if view.shape != (info.bands, info.height, info.width):
        raise DataError(f"{info.path}: {info.key} has shape {array.shape}, expected {(info.bands, info.height, info.width)}")
    return view


def read_cube(info: CubeInfo, key: str | None = None) -> np.ndarray:
    """The raw samples as float32 (bands, H, W); ``key`` reads another variable of the same file."""
    key = key or info.key
    array = np.ascontiguousarray(bands_first(info, read_stored(info, key)), dtype=np.float32)
    check_finite(array, f"{info.path}" + (f" ({key})" if key else ""))
    return array


def constant_bands(cube: np.ndarray) -> np.ndarray:
    """(bands,) True where a band holds one value (AVIRIS water-absorption bands are often all 0)."""
    flat = cube.reshape(len(cube), -1)
    return flat.min(1) == flat.max(1)


def normalization(
    cube: np.ndarray, method: str, quantiles: Sequence[float] = (0.02, 0.98), scale: float | None = None, name: str = ""
) -> tuple[np.ndarray, np.ndarray, bool]:
    """(low, span, clip) mapping ``cube`` to [0, 1] as ``(x - low) / span`` by ``method``.

    Computed on the clean cube and applied unchanged to its noisy version (QRNN3D ``input``).
    """
    if method == "none":
        return np.zeros(1, np.float32), np.ones(1, np.float32), False
    if method == "scale":
        if not scale or scale <= 0:
            raise ConfigError(f"data.normalize=scale needs data.scale > 0 (the value of white), got {scale!r}")
        return np.zeros(1, np.float32), np.full(1, float(scale), np.float32), True
    if method == "minmax":
        # Constant bands (zeroed water-absorption bands) are left out of the span: they carry no scene.
        flat = cube.reshape(len(cube), -1)
        band_low, band_high = flat.min(1), flat.max(1)
        varying = band_high > band_low
        if not varying.any():
            raise DataError(f"{name}: every band is constant ({float(band_low.min())}); nothing to normalise")
        low, high = float(band_low[varying].min()), float(band_high[varying].max())
        return np.full(1, low, np.float32), np.full(1, high - low, np.float32), False
    if method in ("band_minmax", "quantile"):
        flat = cube.reshape(len(cube), -1)
        if method == "band_minmax":
            low, high = flat.min(1), flat.max(1)
        else:
            q_low, q_high = (float(q) for q in quantiles)
            if not 0.0 <= q_low < q_high <= 1.0:
                raise ConfigError(f"data.quantiles={list(quantiles)}: expected [low, high] with 0 <= low < high <= 1")
            low, high = np.quantile(flat, [q_low, q_high], axis=1)
        span = np.where(high > low, high - low, 1.0)  # a constant band maps to 0
        return low.astype(np.float32)[:, None, None], span.astype(np.float32)[:, None, None], method == "quantile"
    raise ConfigError(f"data.normalize={method!r}: expected one of {', '.join(NORMALIZATIONS)}")


def apply_normalization(cube: np.ndarray, params: tuple[np.ndarray, np.ndarray, bool]) -> np.ndarray:
    low, span, clip = params
    out = ((cube - low.reshape(-1, 1, 1)) / span.reshape(-1, 1, 1)).astype(np.float32)
    return np.clip(out, 0.0, 1.0) if clip else out


def normalize(
    cube: np.ndarray, method: str, quantiles: Sequence[float] = (0.02, 0.98), scale: float | None = None, name: str = ""
) -> np.ndarray:
    """(bands, H, W) float32 cube mapped to [0, 1] by ``method`` (see the module docstring)."""
    return apply_normalization(cube, normalization(cube, method, quantiles, scale, name))


def expand_files(files: str | Sequence[str] | None, key: str) -> list[Path]:
    """A list of paths and/or glob patterns -> sorted existing files; DataError if a pattern matches nothing."""
    if files is None:
        return []
    patterns = [files] if isinstance(files, (str, Path)) else list(files)
    found: list[Path] = []
    for pattern in patterns:
        pattern = str(pattern)
        if any(ch in pattern for ch in "*?["):
            parent = Path(pattern).parent
            matches = sorted(parent.glob(Path(pattern).name)) if parent.is_dir() else []
            if not matches:
                raise DataError(f"data.{key}: {pattern} matches no file")
            found += matches
        else:
            if not Path(pattern).is_file():
                raise DataError(f"data.{key}: {pattern} does not exist; expected {'/'.join(SUFFIXES)} cube files")
            found.append(Path(pattern))
    return found


def single_cube_key(path: str | Path, key: str | None, setting: str = "mat_key") -> str | None:
    """The variable of a ``.mat`` cube: ``key``, else the file's only 3-D array (or unfoldable ``Y``).

    Stricter than :func:`probe_cube`'s choice by name: a file with several cubes (QRNN3D's ``gt``
    and ``input``) is refused naming them, since denoising the wrong one would go unnoticed.
    Other files: None (they hold one array).
    """
    path = Path(path)
    if path.suffix.lower() != ".mat":
        return None
    if key is not None:
        return choose_key(path, key, setting=setting)
    shapes = mat_shapes(path)
    cubes = [name for name, shape in shapes.items()
             if shape is not None and len([n for n in shape if n > 1]) == 3]
    if len(cubes) > 1:
        listing = ", ".join(f"{name} {'x'.join(map(str, shapes[name]))}" for name in cubes)
        raise DataError(f"{path}: several cube variables ({listing}); set {setting}=<one of them>")
    if cubes:
        return cubes[0]
    return choose_key(path, None, CUBE_KEYS, setting=setting)


def to_stored(info: CubeInfo, cube: np.ndarray, stored_shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of :func:`bands_first`: a (bands, H, W) cube in the file's shape and axis order."""
    if info.axis_order == "unfolded":
        return cube.transpose(0, 2, 1).reshape(info.bands, -1)
    if info.axis_order == "hwc" and len(stored_shape) > 2:
        return cube.transpose(1, 2, 0).reshape(stored_shape)
    return cube.reshape(stored_shape)


def write_cube(target: str | Path, info: CubeInfo, stored: np.ndarray) -> Path:
    """Write ``stored`` (the file's shape, dtype and axis order) to ``target`` in the format of
    ``info.path``, under the same ``.mat`` variable with the file's other variables kept.

    The file appears whole or not at all: it is written to a hidden file beside ``target`` and
    renamed. ``.mat`` files are written as MATLAB v5 (also for v7.3 inputs, whose other
    variables are then left out: h5py objects do not map onto v5 ones).
    """
    target = Path(target)
    suffix = target.suffix.lower()
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        if suffix == ".mat":
            variables = {} if is_v73(info.path) else _other_variables(Path(info.path), info.key)
            scipy.io.savemat(partial, {**variables, info.key: stored}, do_compression=True)
        elif suffix == ".npy":
            np.save(partial, stored, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            interleaved = info.axis_order == "hwc" and stored.ndim == 3
            tifffile.imwrite(partial, stored, photometric="minisblack",
                             planarconfig="contig" if interleaved else "separate")
        else:
            raise DataError(f"{target}: unsupported cube type {suffix!r}; expected {', '.join(SUFFIXES)}")
        os.replace(partial, target)
    except OSError as error:
        raise DataError(f"{target}: cannot write the cube ({error.strerror or error})") from error
    except ValueError as error:  # scipy: a variable over MATLAB v5's 2 GB
        raise DataError(f"{target}: cannot write the cube ({error})") from error
    finally:
        partial.unlink(missing_ok=True)
    return target


def _other_variables(path: Path, key: str) -> dict[str, np.ndarray]:
    names = [name for name, _, _ in scipy.io.whosmat(str(path)) if name != key]
    if not names:
        return {}
    loaded = scipy.io.loadmat(str(path), variable_names=names)
    return {name: value for name, value in loaded.items() if not name.startswith("__")}
