"""Reading and writing images: PNG (8 and 16 bit), JPEG, TIFF, ``.npy`` and MATLAB ``.mat``, any channel count.

``read_image(path)`` gives a float (C, H, W) tensor in [0, 1] and an :class:`ImageInfo` that
remembers the file's format, dtype, bit depth and axis order; ``write_image(path, image, like=info)``
writes a result back in the same format and bit depth. Integer data are scaled by their type's
maximum (255, 65535); float data (TIFF, ``.npy``) are taken as already in [0, 1].

``probe_image(path)`` reads only the header and checks that the file is complete (not
truncated), so a datamodule can check hundreds of images, their sizes and channel counts in
``setup`` without decoding them.

A ``.mat`` image is one variable of the file (v5 or v7.3): ``probe_image(path, mat_key)`` picks
``mat_key`` or the file's only array; it is written back as MATLAB v5 under the same name.

``ImageInfo.alpha`` marks a last channel that is opacity (PNG grey+alpha and RGBA, palette PNG
with transparency, TIFF with an alpha extra sample); ``.npy`` and ``.mat`` carry no such mark.

A photo written back ``like`` its input is the same photo: ``read_image`` keeps the EXIF block
(orientation included), ICC profile, XMP and a JPEG's quantisation tables and subsampling in
``ImageInfo.photo``, and ``write_image`` puts back what the output format holds (see
:mod:`denoise.data.formats.photo_metadata`); the pixels are written as stored, never turned.

One still image per file: an animated PNG or a multi-page TIFF is refused by the probe (read as
one image it would silently be its first frame, or its pages taken for channels).

Every failure about a file raises :class:`~denoise.errors.DataError` naming the file.
"""

from __future__ import annotations

import logging
import struct
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import png
import scipy.io
import tifffile
import torch
from PIL import Image

from denoise.data.formats.matfile import choose_key, mat_shapes, read_mat
from denoise.data.formats.photo_metadata import (
    METADATA_ERRORS,
    PhotoMetadata,
    insert_png_chunks,
    jpeg_save_options,
    png_metadata_chunks,
    quiet_pillow_exif_warnings,
    read_metadata,
    tiff_write_options,
)
from denoise.errors import DataError

FORMATS = {
    ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".npy": "npy", ".mat": "mat"
}
IMAGE_SUFFIXES = tuple(FORMATS)
DEFAULT_MAT_KEY = "image"  # the variable a .mat output gets when no input names one
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TAIL_BYTES = 65536  # where the end marker of a complete PNG / JPEG must be
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageInfo:
    """What a file holds, without its pixels."""

    path: str
    format: str  # png | jpeg | tiff | npy | mat
    # numpy dtype of the stored samples, e.g. "uint8", "uint16", "float32"; "" for a .mat until it
    # is read (MATLAB's header gives no dtype that loading keeps: logical arrays load as uint8)
    dtype: str
    channels: int
    height: int
    width: int
    axis_order: str = "hwc"  # sample order on disk: hwc (interleaved), chw (planar / bands first), hw (a .mat plane)
    alpha: bool = False  # the last channel is opacity (PNG grey+alpha / RGBA, TIFF with an alpha sample)
    key: str | None = None  # the variable of a .mat file
    # EXIF, ICC, XMP and JPEG tables of a photo, filled by read_image (not by the probe nor
    # read_raw: training reads thousands of crops and needs none of it) so write_image can carry
    # them; read with the pixels rather than from ``path`` at write time, so the output gets the
    # metadata of exactly the image that was denoised even if the input changes or goes meanwhile.
    photo: PhotoMetadata | None = field(default=None, compare=False, repr=False)

    @property
    def colour_channels(self) -> int:
        """The channels that hold the picture: all but the alpha channel."""
        return self.channels - 1 if self.alpha else self.channels

    @property
    def bit_depth(self) -> int:
        return np.dtype(self.dtype).itemsize * 8

    @property
    def scale(self) -> float:
        """The value that maps to 1.0."""
        kind = np.dtype(self.dtype)
        return float(np.iinfo(kind).max) if kind.kind in "ui" else 1.0

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width


def image_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{path}: unsupported image type {suffix!r}; expected one of {', '.join(FORMATS)}")
    return FORMATS[suffix]


def list_images(folder: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The files of ``folder`` with one of ``suffixes`` (not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in suffixes)


# ----------------------------------------------------------------------------------- probing


def probe_image(path: str | Path, mat_key: str | None = None) -> ImageInfo:
    """Header facts of an image file; DataError if it is unreadable or truncated.

    ``mat_key`` names the variable of a ``.mat`` file (default: its only array).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    fmt = image_format(path)
    try:
        return _probe_mat(path, mat_key) if fmt == "mat" else _PROBES[fmt](path)
    except DataError:
        raise
    except Exception as error:  # every library has its own exception types
        raise DataError(f"{path}: not a readable {fmt.upper()} file ({_short(error)})") from error


def _probe_png(path: Path) -> ImageInfo:
    with open(path, "rb") as f:
        head = f.read(33)
        if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
            raise DataError(f"{path}: not a PNG file (bad signature)")
        width, height, bit_depth, color_type = struct.unpack(">IIBB", head[16:26])
    if not _tail_contains(path, b"IEND"):
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end of the file)")
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color_type)
    if channels is None:
        raise DataError(f"{path}: PNG with unknown colour type {color_type}")
    if color_type == 3:  # palette: expanded to RGB(A) on reading
        with Image.open(path) as im:
            channels = 4 if "transparency" in im.info else 3
    frames = _png_frames(path)
    if frames > 1:
        raise DataError(f"{path}: animated PNG with {frames} frames; expected one still image (save one frame as a PNG)")
    dtype = "uint16" if bit_depth == 16 else "uint8"
    return ImageInfo(str(path), "png", dtype, channels, height, width, alpha=channels in (2, 4))


def _png_frames(path: Path) -> int:
    """The frame count of an animated PNG's acTL chunk (1 without one), from the chunk headers
    before the image data: no decoding, and no Pillow size limit for a large 16-bit photo."""
    with open(path, "rb") as f:
        f.seek(len(_PNG_SIGNATURE))
        while len(header := f.read(8)) == 8:
            length, kind = struct.unpack(">I4s", header)
            if kind == b"acTL":
                return struct.unpack(">I", f.read(4))[0]
            if kind == b"IDAT":
                break
            f.seek(length + 4, 1)  # the data and its CRC
    return 1


def _probe_jpeg(path: Path) -> ImageInfo:
    with quiet_pillow_exif_warnings(), Image.open(path) as im:
        if im.format != "JPEG":
            raise DataError(f"{path}: not a JPEG file (it is {im.format})")
        width, height, mode = im.width, im.height, im.mode
    if not _tail_contains(path, b"\xff\xd9"):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    channels = {"L": 1, "RGB": 3, "CMYK": 3, "YCbCr": 3}.get(mode, 3)
    return ImageInfo(str(path), "jpeg", "uint8", channels, height, width)


def _probe_tiff(path: Path) -> ImageInfo:
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        _check_one_page(path, tif)
        series = tif.series[0]
        for page in series.pages:
            if page is None:
                continue
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts) if n]
            if ends and max(ends) > size:
                raise DataError(f"{path}: truncated TIFF (image data end past the end of the file)")
        shape, axes, dtype = tuple(series.shape), series.axes, series.dtype
        extra = tuple(series.keyframe.extrasamples)
    axis_order, channels, height, width = _tiff_geometry(path, shape, axes)
    # ExtraSamples 1 / 2: associated / unassociated alpha, stored after the colour samples.
    alpha = axis_order == "hwc" and channels in (2, 4) and len(extra) == 1 and int(extra[0]) in (1, 2)
    return ImageInfo(str(path), "tiff", str(dtype), channels, height, width, axis_order, alpha)


def _check_one_page(path: Path, tif: tifffile.TiffFile) -> None:
    """Refuse a multi-page TIFF: read as one image it would be one page only, or (pages of one
    size) its pages taken for channels. Reduced-resolution pages (previews) do not count."""
    pages = [page for page in tif.pages if not int(page.subfiletype) & 1]
    if len(pages) > 1:
        raise DataError(
            f"{path}: multi-page TIFF with {len(pages)} pages; expected one still image (save each page as its own file)"
        )


def _tiff_geometry(path: Path, shape: tuple[int, ...], axes: str) -> tuple[str, int, int, int]:
    squeezed = [(n, a) for n, a in zip(shape, axes) if n != 1 or a in "YX"]
    shape, axes = tuple(n for n, _ in squeezed), "".join(a for _, a in squeezed)
    if len(shape) == 2:
        return "hwc", 1, shape[0], shape[1]
    if len(shape) != 3:
        raise DataError(f"{path}: TIFF of shape {shape} (axes {axes}); expected one 2-D or 3-D image")
    if axes.endswith("S"):
        return "hwc", shape[2], shape[0], shape[1]
    return "chw", shape[0], shape[1], shape[2]


def _probe_npy(path: Path) -> ImageInfo:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as error:
        if "mmap length" in str(error) or "larger than" in str(error):
            raise DataError(f"{path}: truncated .npy (file shorter than its header says)") from error
        raise
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: .npy of dtype {array.dtype}; expected integer or float samples")
    axis_order, channels, height, width = npy_geometry(path, array.shape)
    return ImageInfo(str(path), "npy", str(array.dtype), channels, height, width, axis_order)


def npy_geometry(path: str | Path, shape: tuple[int, ...]) -> tuple[str, int, int, int]:
    """(H, W), (H, W, C) or (C, H, W): channels are the axis strictly smaller than the other two."""
    if len(shape) == 2:
        return "hwc", 1, shape[0], shape[1]
    if len(shape) == 3:
        if shape[0] < min(shape[1:]):
            return "chw", shape[0], shape[1], shape[2]
        if shape[2] < min(shape[:2]):
            return "hwc", shape[2], shape[0], shape[1]
    raise DataError(
        f"{path}: array of shape {tuple(shape)} is not an image; expected (H, W), (H, W, C) or (C, H, W) "
        f"with C smaller than H and W"
    )


def _probe_mat(path: Path, key: str | None) -> ImageInfo:
    name = choose_key(path, key, setting="mat_key")
    shape = mat_shapes(path)[name]
    axis_order, channels, height, width = npy_geometry(path, shape)
    return ImageInfo(str(path), "mat", "", channels, height, width, "hw" if len(shape) == 2 else axis_order, key=name)


_PROBES = {"png": _probe_png, "jpeg": _probe_jpeg, "tiff": _probe_tiff, "npy": _probe_npy}


def _tail_contains(path: Path, marker: bytes) -> bool:
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - _TAIL_BYTES))
        return marker in f.read()


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# ----------------------------------------------------------------------------------- reading


def read_raw(path: str | Path, info: ImageInfo | None = None) -> tuple[np.ndarray, ImageInfo]:
    """The stored samples as a (C, H, W) numpy array of the file's own dtype (a view where possible),
    and the file's :class:`ImageInfo` (a ``.mat``'s with its dtype filled in)."""
    info = info if info is not None else probe_image(path)
    try:
        array = _READERS[info.format](Path(path), info)
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: cannot decode the image ({_short(error)})") from error
    if info.format == "mat":
        info = replace(info, dtype=str(array.dtype))
    if array.ndim == 2:
        array = array[None]
    elif info.axis_order == "hwc":
        array = array.transpose(2, 0, 1)
    if array.shape != info.shape:
        raise DataError(f"{path}: decoded shape {array.shape} differs from the header's {info.shape}")
    return array, info


def read_image(path: str | Path, info: ImageInfo | None = None) -> tuple[torch.Tensor, ImageInfo]:
    """A float32 (C, H, W) tensor in [0, 1] and the file's :class:`ImageInfo` (``info``: probed
    already) with the photo's metadata (EXIF, ICC, XMP, JPEG tables) for :func:`write_image`."""
    array, info = read_raw(path, info)
    return to_float(array, info.scale), replace(info, photo=_photo_metadata(Path(path), info.format))


def _photo_metadata(path: Path, fmt: str) -> PhotoMetadata | None:
    """The metadata, or None with one warning line if it cannot be read: the pixels could, so the
    photo is still denoised."""
    try:
        return read_metadata(path, fmt)
    except METADATA_ERRORS as error:
        log.warning(f"{path}: unreadable metadata ({_short(error)}); the output is written without it")
        return None


def to_float(array: np.ndarray, scale: float) -> torch.Tensor:
    """float32 tensor of ``array / scale`` (integer samples to [0, 1])."""
    tensor = torch.from_numpy(np.array(array, dtype=np.float32))  # a copy: the source may be read-only
    return tensor / scale if scale != 1.0 else tensor


def _read_png(path: Path, info: ImageInfo) -> np.ndarray:
    if info.dtype == "uint16" and info.channels > 1:  # Pillow truncates 16-bit colour to 8 bits
        width, height, rows, _ = png.Reader(filename=str(path)).asDirect()
        flat = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        return flat.reshape(height, width, -1)
    with Image.open(path) as im:
        im.load()
        if im.mode == "P":
            im = im.convert("RGBA" if info.channels == 4 else "RGB")
        elif im.mode in ("1",):
            im = im.convert("L")
        array = np.asarray(im)
    if info.dtype == "uint16":
        array = array.astype(np.uint16, copy=False)
    return array


def _read_jpeg(path: Path, info: ImageInfo) -> np.ndarray:
    with quiet_pillow_exif_warnings(), Image.open(path) as im:
        im.load()
        if im.mode not in ("L", "RGB"):
            im = im.convert("RGB")
        return np.asarray(im)


def _read_tiff(path: Path, info: ImageInfo) -> np.ndarray:
    return tifffile.imread(path, key=None).reshape(
        (info.height, info.width, info.channels) if info.axis_order == "hwc" else info.shape
    )


def _read_npy(path: Path, info: ImageInfo) -> np.ndarray:
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _read_mat(path: Path, info: ImageInfo) -> np.ndarray:
    array = read_mat(path, info.key)
    if array.dtype.kind not in "uif":
        raise DataError(f"{path}: variable {info.key!r} is {array.dtype}; expected integer or float samples")
    return array


_READERS = {"png": _read_png, "jpeg": _read_jpeg, "tiff": _read_tiff, "npy": _read_npy, "mat": _read_mat}


# ----------------------------------------------------------------------------------- writing


def write_image(path: str | Path, image: torch.Tensor | np.ndarray, like: ImageInfo | None = None) -> Path:
    """Write a float (C, H, W) image in [0, 1] to ``path``; the suffix chooses the format.

    With ``like`` (the :class:`ImageInfo` of the input) the bit depth, dtype and axis order follow
    the original where the format can hold them: a 16-bit PNG stays 16-bit, a float TIFF stays
    float, a ``.mat`` keeps its variable name; a ``like`` from :func:`read_image` also gives the
    photo's metadata and JPEG compression (``ImageInfo.photo``). Without it, PNG and JPEG are
    8-bit (JPEG quality 95), TIFF, ``.npy`` and ``.mat`` float32.
    """
    path = Path(path)
    fmt = image_format(path)
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DataError(f"{path}: expected a (C, H, W) image to write, got shape {array.shape}")
    dtype = _output_dtype(fmt, like)
    stored = _quantize(array, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    same_format = like is not None and like.format == fmt
    axis_order = like.axis_order if same_format else ("chw" if fmt == "npy" else "hwc")
    key = like.key if same_format and like.key else DEFAULT_MAT_KEY
    _WRITERS[fmt](path, stored, axis_order, key, like.photo if like is not None else None)
    return path


def _output_dtype(fmt: str, like: ImageInfo | None) -> np.dtype:
    original = np.dtype(like.dtype) if like is not None else None
    if fmt == "jpeg":
        return np.dtype(np.uint8)
    if fmt == "png":
        return np.dtype(np.uint16) if original == np.uint16 else np.dtype(np.uint8)
    return original if original is not None else np.dtype(np.float32)


def _quantize(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        return array.astype(dtype)
    top = np.iinfo(dtype).max
    return np.floor(np.clip(array.astype(np.float64), 0.0, 1.0) * top + 0.5).astype(dtype)


def _write_png(path: Path, array: np.ndarray, axis_order: str, key: str, photo: PhotoMetadata | None) -> None:
    channels, height, width = array.shape
    if channels not in (1, 2, 3, 4):
        raise DataError(f"{path}: PNG holds 1 to 4 channels, the image has {channels}; write .tif or .npy")
    hwc = np.ascontiguousarray(array.transpose(1, 2, 0))
    if array.dtype == np.uint16 and channels > 1:
        writer = png.Writer(width, height, greyscale=channels < 3, alpha=channels in (2, 4), bitdepth=16)
        with open(path, "wb") as f:
            writer.write(f, hwc.reshape(height, width * channels))
    else:
        Image.fromarray(hwc[..., 0] if channels == 1 else hwc).save(path)
    insert_png_chunks(path, png_metadata_chunks(photo, channels, path))


def _write_jpeg(path: Path, array: np.ndarray, axis_order: str, key: str, photo: PhotoMetadata | None) -> None:
    if array.shape[0] not in (1, 3):
        raise DataError(f"{path}: JPEG holds 1 or 3 channels, the image has {array.shape[0]}")
    hwc = np.ascontiguousarray(array.transpose(1, 2, 0))
    options = jpeg_save_options(photo, array.shape[0], path)
    Image.fromarray(hwc[..., 0] if array.shape[0] == 1 else hwc).save(path, **options)


def _write_tiff(path: Path, array: np.ndarray, axis_order: str, key: str, photo: PhotoMetadata | None) -> None:
    channels = array.shape[0]
    options = tiff_write_options(photo, channels, path)
    if channels == 1:
        tifffile.imwrite(path, array[0], photometric="minisblack", **options)
    elif axis_order == "hwc" and channels in (3, 4):
        tifffile.imwrite(path, array.transpose(1, 2, 0), photometric="rgb", **options)
    else:
        tifffile.imwrite(path, array, photometric="minisblack", planarconfig="separate", **options)


def _write_npy(path: Path, array: np.ndarray, axis_order: str, key: str, photo: PhotoMetadata | None) -> None:
    np.save(path, array[0] if array.shape[0] == 1 else (array if axis_order == "chw" else array.transpose(1, 2, 0)))


def _write_mat(path: Path, array: np.ndarray, axis_order: str, key: str, photo: PhotoMetadata | None) -> None:
    """MATLAB v5 (scipy writes no v7.3), ``key`` in the input's axis order."""
    stored = array[0] if axis_order == "hw" else (array if axis_order == "chw" else array.transpose(1, 2, 0))
    scipy.io.savemat(path, {key: np.ascontiguousarray(stored)}, do_compression=True)


_WRITERS = {"png": _write_png, "jpeg": _write_jpeg, "tiff": _write_tiff, "npy": _write_npy, "mat": _write_mat}


def probe_images(paths: list[Path], skip_bad: bool = False) -> list[tuple[Path, ImageInfo]]:
    """Probe every file; a bad one stops with its name, or with ``skip_bad`` is left out with a warning."""
    good = []
    for path in paths:
        try:
            good.append((path, probe_image(path)))
        except DataError as error:
            if not skip_bad:
                raise DataError(f"{error}; set data.skip_bad=true to skip bad files") from error
            warnings.warn(f"skipping a bad image: {error}", stacklevel=2)
    return good
