"""Photo metadata: what makes a denoised file the same photo as its input, beyond its pixels.

``read_metadata(path, fmt)`` collects, from a JPEG, PNG or TIFF, the items a viewer or a photo
library uses: the EXIF block as stored (camera, date, exposure, GPS and the orientation tag), the
ICC colour profile, the XMP packet, and for a JPEG its quantisation tables, chroma subsampling and
progressive flag. The writers of :mod:`denoise.data.formats.image_files` ask this module for the
options (``jpeg_save_options``, ``png_metadata_chunks``, ``tiff_write_options``) that put them back.

The pixels are written as stored and the EXIF block is carried verbatim, orientation tag
included, so a viewer turns the output exactly as it turns the input (a phone photo stored
landscape with orientation 6 is shown portrait, input and output alike).

What each output format holds:

- JPEG: EXIF (APP1, at most 65533 bytes), ICC (APP2), XMP (APP1), the input JPEG's quantisation
  tables, subsampling and progressive flag (another input: quality 95, Pillow's subsampling).
- PNG, 8 and 16 bit: ``iCCP``, ``eXIf`` and an ``iTXt`` ``XML:com.adobe.xmp`` chunk, inserted
  before the image data (the same way for Pillow's 8-bit and pypng's 16-bit files).
- TIFF: ICC (tag 34675), XMP (700), Orientation (274) and the descriptive baseline tags
  (ImageDescription, Make, Model, Software, DateTime, Artist, HostComputer, Copyright).
  tifffile writes no EXIF sub-IFD, so the exposure and GPS tags of the EXIF block do not reach
  a TIFF output (they do reach JPEG and PNG outputs of a JPEG or PNG input), nor does a TIFF
  input's own EXIF sub-IFD reach any output. tifffile writes 7-bit ASCII text only: a descriptive
  tag with other characters, or a DateTime not in EXIF's "YYYY:MM:DD HH:MM:SS", is left out.
  A TIFF input's orientation and descriptive tags reach a JPEG or PNG output as a small EXIF block.

An ICC profile is attached only to an output whose colours it describes (an RGB profile to RGB or
RGBA, a grey profile to grey), so a CMYK profile never reaches an RGB output. A CMYK JPEG is read
as RGB (Pillow's plain conversion) and written as an RGB JPEG without its CMYK profile and
tables, with one warning line (a CMYK profile cannot describe the RGB the network saw; convert
the file to RGB first to choose the conversion). An EXIF block Pillow cannot parse, or parses only
with warnings (a tag past the end of the block), is left out of the output with one warning line
naming the file. Warnings go to this module's logger, one line each.

Reading happens in ``image_files.read_image`` (the probe and ``read_raw`` skip it: training reads
need no metadata); PNG chunks are read with pypng, which neither decodes the image nor stops at
Pillow's pixel-count limit.
"""

from __future__ import annotations

import logging
import struct
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import png
import tifffile
from PIL import Image, JpegImagePlugin

log = logging.getLogger(__name__)

EXIF_HEADER = b"Exif\x00\x00"  # how Pillow hands over an EXIF block, JPEG and PNG alike
ORIENTATION = 274
EXIF_IFD, GPS_IFD = 0x8769, 0x8825  # IFD0's pointers to the EXIF and GPS directories
XMP_TAG, ICC_TAG = 700, 34675
# Baseline TIFF tags that describe the photo; EXIF's IFD0 uses the same codes.
DESCRIPTIVE_TAGS = {
    270: "ImageDescription", 271: "Make", 272: "Model", 305: "Software", 306: "DateTime",
    315: "Artist", 316: "HostComputer", 33432: "Copyright",
}
JPEG_MARKER_BYTES = 65533  # the most data one JPEG marker segment holds
JPEG_XMP_BYTES = JPEG_MARKER_BYTES - 29  # less the XMP namespace that opens the segment
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
DEFAULT_JPEG_QUALITY = 95  # a JPEG output of a non-JPEG input
# What Pillow, pypng and tifffile raise on malformed metadata (UnicodeDecodeError and tifffile's errors
# are ValueErrors, Pillow's "not a TIFF file" a SyntaxError).
METADATA_ERRORS = (
    OSError, ValueError, SyntaxError, struct.error, KeyError, IndexError, TypeError, zlib.error, png.Error
)


@dataclass(frozen=True)
class JpegEncoding:
    """How the input JPEG was compressed, so the output loses no more than the input did."""

    qtables: tuple[tuple[int, ...], ...]
    subsampling: int  # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0, -1 = unknown
    progressive: bool


@dataclass(frozen=True)
class PhotoMetadata:
    """The metadata of one photo file; every item optional."""

    exif: bytes | None = None  # the EXIF block as stored, starting with EXIF_HEADER
    icc: bytes | None = None
    xmp: bytes | None = None
    orientation: int | None = None  # EXIF / TIFF tag 274
    descriptive: tuple[tuple[int, str], ...] = ()  # (tag code, text) of DESCRIPTIVE_TAGS
    jpeg: JpegEncoding | None = None


# ----------------------------------------------------------------------------------- reading


def read_metadata(path: str | Path, fmt: str) -> PhotoMetadata | None:
    """The metadata of a ``jpeg``, ``png`` or ``tiff`` file; None for other formats."""
    reader = {"jpeg": _read_jpeg, "png": _read_png, "tiff": _read_tiff}.get(fmt)
    return reader(Path(path)) if reader else None


@contextmanager
def quiet_pillow_exif_warnings():
    """Pillow warns, several lines per bad tag, while it opens a JPEG whose EXIF block is damaged
    (it looks there for the resolution); this module reports such a block once, in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


def _read_jpeg(path: Path) -> PhotoMetadata:
    with quiet_pillow_exif_warnings(), Image.open(path) as im:
        info = dict(im.info)
        cmyk = im.mode == "CMYK"
        encoding = None if cmyk else _jpeg_encoding(im)
    icc = info.get("icc_profile")
    if cmyk:
        log.warning(
            f"{path}: CMYK JPEG; denoised in RGB and written as an RGB JPEG without its CMYK "
            f"colour profile (convert it to RGB first to choose the conversion yourself)"
        )
        icc = None
    return _with_exif_tags(path, info.get("exif"), icc=icc, xmp=info.get("xmp"), jpeg=encoding)


def _jpeg_encoding(im: Image.Image) -> JpegEncoding | None:
    tables = getattr(im, "quantization", None)
    if not tables:
        return None
    ordered = tuple(tuple(int(q) for q in tables[k]) for k in sorted(tables))
    progressive = bool(im.info.get("progressive") or im.info.get("progression"))
    return JpegEncoding(ordered, JpegImagePlugin.get_sampling(im), progressive)


def _read_png(path: Path) -> PhotoMetadata:
    """From the chunks as pypng lists them (CRCs checked, the image data not decompressed, so a
    16-bit photo Pillow would not open for its size is read all the same); an eXIf chunk may come
    after the image data."""
    exif, items = None, {}
    for kind, data in png.Reader(filename=str(path)).chunks():
        if kind == b"iCCP":  # profile name, NUL, compression method, zlib stream
            items["icc"] = zlib.decompress(data.split(b"\x00", 1)[1][1:])
        elif kind == b"eXIf":
            exif = data
        elif kind == b"iTXt" and data.startswith(PNG_XMP_KEYWORD + b"\x00"):
            items["xmp"] = _itxt_text(data)
    return _with_exif_tags(path, exif, **items)


def _itxt_text(data: bytes) -> bytes:
    """The text of an iTXt chunk: keyword NUL, compressed flag, method, language NUL, translated
    keyword NUL, text (zlib if flagged)."""
    rest = data.split(b"\x00", 1)[1]
    compressed, rest = rest[0], rest[2:]
    text = rest.split(b"\x00", 2)[2]
    return zlib.decompress(text) if compressed else text


def _read_tiff(path: Path) -> PhotoMetadata:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages.first.tags
        values = {code: tags[code].value for code in (ICC_TAG, XMP_TAG, ORIENTATION, *DESCRIPTIVE_TAGS) if code in tags}
    descriptive = tuple((c, values[c]) for c in DESCRIPTIVE_TAGS if isinstance(values.get(c), str) and values[c])
    orientation = values.get(ORIENTATION)
    return PhotoMetadata(
        icc=_as_bytes(values.get(ICC_TAG)),
        xmp=_as_bytes(values.get(XMP_TAG)),
        orientation=int(orientation) if orientation is not None else None,
        descriptive=descriptive,
    )


def _as_bytes(value) -> bytes | None:
    if value is None:
        return None
    return value if isinstance(value, bytes) else bytes(value)


def _with_exif_tags(path: Path, exif: bytes | None, **items) -> PhotoMetadata:
    """PhotoMetadata with the EXIF block and the orientation and descriptive tags of its IFD0;
    an EXIF block Pillow cannot parse is left out with one warning line."""
    if not exif:
        return PhotoMetadata(**items)
    exif = exif if exif.startswith(EXIF_HEADER) else EXIF_HEADER + exif
    try:
        parsed = _parse_exif(exif)
    except METADATA_ERRORS as error:
        log.warning(f"{path}: unreadable EXIF block ({_first_line(error)}); the output is written without it")
        return PhotoMetadata(**items)
    orientation = parsed.get(ORIENTATION)
    descriptive = tuple(
        (code, parsed[code]) for code in DESCRIPTIVE_TAGS if isinstance(parsed.get(code), str) and parsed[code]
    )
    return PhotoMetadata(
        exif=exif, orientation=orientation if isinstance(orientation, int) else None, descriptive=descriptive, **items
    )


def _parse_exif(exif: bytes) -> Image.Exif:
    """The block parsed by Pillow, its EXIF and GPS directories too; ValueError where Pillow only
    warns (a tag past the end of the block) or finds no tag: such a block is not carried."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = Image.Exif()
        parsed.load(exif)
        for pointer in (EXIF_IFD, GPS_IFD):
            parsed.get_ifd(pointer)
    if caught:
        raise ValueError(_first_line(caught[0].message))
    if not len(parsed):
        raise ValueError("no tags in its first directory")
    return parsed


def _first_line(error: BaseException | Warning | str) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


# ----------------------------------------------------------------------------------- writing


def profile_for(photo: PhotoMetadata | None, channels: int, path: Path) -> bytes | None:
    """The ICC profile if it describes an output of ``channels`` channels (RGB(A) or grey(+alpha)):
    a profile of another colour space (CMYK, or RGB for grey) would make viewers show wrong colours."""
    if photo is None or not photo.icc:
        return None
    space = photo.icc[16:20]  # the ICC header's data colour space signature
    wanted = {1: b"GRAY", 2: b"GRAY", 3: b"RGB ", 4: b"RGB "}.get(channels)
    if space != wanted:
        log.warning(
            f"{path}: the input's ICC profile is for {space.decode('latin-1').strip() or 'an unknown'} "
            f"colour, the output has {channels} channel(s); written without it"
        )
        return None
    return photo.icc


def exif_block(photo: PhotoMetadata | None) -> bytes | None:
    """The EXIF block to write: the input's as stored, or for a TIFF input one built from its
    orientation and descriptive tags (Pillow's encoder)."""
    if photo is None:
        return None
    if photo.exif:
        return photo.exif
    if photo.orientation is None and not photo.descriptive:
        return None
    built = Image.Exif()
    if photo.orientation is not None:
        built[ORIENTATION] = photo.orientation
    for code, text in photo.descriptive:
        built[code] = text
    return built.tobytes()


def jpeg_save_options(photo: PhotoMetadata | None, channels: int, path: Path) -> dict:
    """Pillow ``save`` options of a JPEG output: the input's tables, subsampling and metadata."""
    options: dict = {"quality": DEFAULT_JPEG_QUALITY}
    encoding = photo.jpeg if photo is not None else None
    if encoding is not None:
        # Tables in place of a quality: the output is compressed exactly as the input was.
        options = {"qtables": [list(t) for t in encoding.qtables[: 1 if channels == 1 else None]]}
        if channels == 3 and encoding.subsampling >= 0:
            options["subsampling"] = encoding.subsampling
        options["progressive"] = encoding.progressive
    exif = exif_block(photo)
    if exif and len(exif) > JPEG_MARKER_BYTES:
        log.warning(f"{path}: the EXIF block ({len(exif)} bytes) does not fit a JPEG; written without it")
        exif = None
    xmp = photo.xmp if photo is not None else None
    if xmp and len(xmp) > JPEG_XMP_BYTES:
        log.warning(f"{path}: the XMP packet ({len(xmp)} bytes) does not fit a JPEG; written without it")
        xmp = None
    extras = {"exif": exif, "icc_profile": profile_for(photo, channels, path), "xmp": xmp}
    return options | {key: value for key, value in extras.items() if value}


def png_metadata_chunks(photo: PhotoMetadata | None, channels: int, path: Path) -> list[tuple[bytes, bytes]]:
    """The iCCP, eXIf and iTXt (XMP) chunks of a PNG output, as (type, data)."""
    chunks = []
    icc = profile_for(photo, channels, path)
    if icc:
        # profile name, NUL, compression method 0 (zlib), the compressed profile
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    exif = exif_block(photo)
    if exif:
        chunks.append((b"eXIf", exif.removeprefix(EXIF_HEADER)))
    if photo is not None and photo.xmp:
        # keyword, NUL, not compressed, method 0, empty language, NUL, empty translated keyword, NUL
        chunks.append((b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + photo.xmp))
    return chunks


def insert_png_chunks(path: Path, chunks: list[tuple[bytes, bytes]]) -> None:
    """Rewrite the PNG at ``path`` with ``chunks`` right after IHDR (iCCP must precede the image
    data); pypng computes each chunk's CRC."""
    if not chunks:
        return
    stored = list(png.Reader(filename=str(path)).chunks())
    with open(path, "wb") as f:
        png.write_chunks(f, [stored[0], *chunks, *stored[1:]])


def tiff_write_options(photo: PhotoMetadata | None, channels: int, path: Path) -> dict:
    """tifffile ``imwrite`` options: ICC, XMP, orientation and the descriptive baseline tags."""
    if photo is None:
        return {}
    options: dict = {}
    extratags = []
    icc = profile_for(photo, channels, path)
    if icc:
        options["iccprofile"] = icc
    if photo.xmp:
        extratags.append((XMP_TAG, "B", len(photo.xmp), photo.xmp, True))
    if photo.orientation is not None:
        extratags.append((ORIENTATION, "H", 1, photo.orientation, True))
    for code, text in photo.descriptive:
        if not _fits_tiff_text(code, text):
            continue
        if code == 270:  # tifffile's own ImageDescription (its shape JSON) gives way to the photo's
            options |= {"description": text, "metadata": None}
        elif code == 305:
            options["software"] = text
        elif code == 306:
            options["datetime"] = text
        else:
            extratags.append((code, "s", 0, text, True))
    if extratags:
        options["extratags"] = extratags
    return options


def _fits_tiff_text(code: int, text: str) -> bool:
    """tifffile writes 7-bit ASCII only, and a DateTime only as "YYYY:MM:DD HH:MM:SS"."""
    if not text.isascii() or "\x00" in text:
        return False
    if code != 306:
        return True
    try:
        datetime.strptime(text, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return False
    return True
