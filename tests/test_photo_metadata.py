"""Photo metadata: a denoised JPEG, PNG or TIFF is the same photo as its input (EXIF with its
orientation, ICC, XMP, JPEG tables and subsampling, bit depth); bad photos fail or warn in one line."""

from __future__ import annotations

import logging
import zlib
from dataclasses import replace
from functools import cache
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps, JpegImagePlugin, PngImagePlugin
from PIL.TiffImagePlugin import IFDRational

from denoise.data.formats.image_files import probe_image, read_image, read_raw, write_image
from denoise.data.formats.photo_metadata import PhotoMetadata
from denoise.errors import DataError

RNG = np.random.default_rng(0)
GPS_IFD, EXIF_IFD = 0x8825, 0x8769
XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" dc:format="image/jpeg"/>'
    b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


@cache
def srgb_profile() -> bytes:
    """One sRGB profile for the whole module: lcms stamps each new profile with the time."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def cmyk_profile() -> bytes:
    """An ICC profile whose header says CMYK (what a print-ready CMYK JPEG carries)."""
    icc = bytearray(srgb_profile())
    icc[16:20] = b"CMYK"
    return bytes(icc)


def camera_exif(orientation: int = 6) -> bytes:
    """A phone's EXIF block: orientation, camera, date, exposure and GPS position."""
    exif = Image.Exif()
    exif[274] = orientation
    exif[271], exif[272], exif[306] = "Phonemaker", "Phone 12", "2024:05:17 18:04:33"
    exif.get_ifd(EXIF_IFD).update({0x829A: IFDRational(1, 125), 0x8827: 400})
    exif.get_ifd(GPS_IFD).update(
        {1: "N", 2: (IFDRational(52), IFDRational(30), IFDRational(1534, 100)), 3: "E",
         4: (IFDRational(13), IFDRational(24), IFDRational(0))}
    )
    return exif.tobytes()


def pixels(height: int, width: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    """(H, W, C) smooth structure plus noise, so JPEG tables matter and sizes are not symmetric."""
    y, x = np.mgrid[0:height, 0:width]
    planes = [0.5 + 0.35 * np.sin(x / (4 + c)) * np.cos(y / 5) for c in range(channels)]
    image = np.clip(np.stack(planes, -1) + RNG.normal(0, 0.05, (height, width, channels)), 0, 1)
    return (image * np.iinfo(dtype).max).round().astype(dtype)


def phone_jpeg(path: Path) -> Path:
    """A phone photo stored landscape (64 high, 96 wide) that viewers turn to portrait (orientation 6)."""
    Image.fromarray(pixels(64, 96)).save(
        path, quality=80, subsampling="4:2:2", exif=camera_exif(6), icc_profile=srgb_profile(), xmp=XMP
    )
    return path


def denoised_like(source: Path, target: Path) -> Path:
    """What predict does with a file: read it, write the (here unchanged) image like the input."""
    image, info = read_image(source)
    return write_image(target, image, like=info)


def viewer_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).size


def png_chunks(path: Path) -> dict[bytes, bytes]:
    """The chunks of a PNG by type; pypng checks every CRC on the way."""
    return dict(png.Reader(filename=str(path)).chunks())


# ----------------------------------------------------------------------------------- JPEG


def test_jpeg_output_is_the_same_photo(tmp_path):
    source = phone_jpeg(tmp_path / "phone.jpg")
    out = denoised_like(source, tmp_path / "out" / "phone.jpg")
    with Image.open(source) as before, Image.open(out) as after:
        assert after.info["exif"] == before.info["exif"]  # the block verbatim, byte for byte
        exif, original = after.getexif(), before.getexif()
        assert exif[274] == 6 and (exif[271], exif[272], exif[306]) == ("Phonemaker", "Phone 12", "2024:05:17 18:04:33")
        assert exif.get_ifd(GPS_IFD) == original.get_ifd(GPS_IFD) and len(exif.get_ifd(GPS_IFD)) == 4
        assert exif.get_ifd(EXIF_IFD)[0x8827] == 400
        assert after.info["icc_profile"] == srgb_profile()
        assert after.info["xmp"] == XMP
        assert after.quantization == before.quantization  # compressed as the input was (quality 80)
        assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before) == 1  # 4:2:2
        assert after.size == before.size == (96, 64)  # the pixels as stored, not turned
    assert viewer_size(out) == viewer_size(source) == (64, 96)  # a viewer shows both portrait


def test_jpeg_of_another_format_gets_quality_95(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(pixels(24, 32)).save(path)
    out = denoised_like(path, tmp_path / "photo.jpg")
    with Image.open(out) as after:
        assert "exif" not in after.info and "icc_profile" not in after.info
        reference = tmp_path / "q95.jpg"
        Image.fromarray(pixels(8, 8)).save(reference, quality=95)
        with Image.open(reference) as q95:
            assert after.quantization == q95.quantization


def test_grey_jpeg_keeps_its_one_table(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.fromarray(pixels(40, 30, 1)[..., 0]).save(path, quality=70, exif=camera_exif(3))
    out = denoised_like(path, tmp_path / "out.jpg")
    with Image.open(path) as before, Image.open(out) as after:
        assert after.mode == "L" and after.quantization == before.quantization
        assert after.getexif()[274] == 3


# ----------------------------------------------------------------------------------- PNG


def png_with_metadata(path: Path, bit_depth: int) -> Path:
    """An RGB PNG with iCCP, eXIf and an XMP iTXt chunk (16 bit: written by pypng, chunks added)."""
    if bit_depth == 8:
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
        Image.fromarray(pixels(30, 44)).save(path, icc_profile=srgb_profile(), exif=camera_exif(8), pnginfo=info)
        return path
    stored = pixels(30, 44, dtype=np.uint16)
    with open(path, "wb") as f:
        png.Writer(44, 30, greyscale=False, bitdepth=16).write(f, stored.reshape(30, -1))
    chunks = list(png.Reader(filename=str(path)).chunks())
    extra = [
        (b"iCCP", b"camera\x00\x00" + zlib.compress(srgb_profile())),
        (b"eXIf", camera_exif(8)[6:]),
        (b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP),
    ]
    with open(path, "wb") as f:
        png.write_chunks(f, [chunks[0], *extra, *chunks[1:]])
    return path


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_png_output_keeps_icc_exif_xmp_and_bit_depth(tmp_path, bit_depth):
    source = png_with_metadata(tmp_path / "scan.png", bit_depth)
    out = denoised_like(source, tmp_path / "out" / "scan.png")
    with Image.open(source) as before, Image.open(out) as after:
        assert after.info["icc_profile"] == before.info["icc_profile"] == srgb_profile()
        assert after.info["exif"] == before.info["exif"] == camera_exif(8)
        assert after.info["xmp"] == before.info["xmp"]
        assert after.getexif()[274] == 8
    chunks = png_chunks(out)  # every CRC right
    assert chunks[b"iTXt"] == b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + XMP  # uncompressed, byte for byte
    assert chunks[b"eXIf"] == camera_exif(8)[6:]
    assert probe_image(out).dtype == ("uint16" if bit_depth == 16 else "uint8")
    np.testing.assert_array_equal(read_raw(out)[0], read_raw(source)[0])
    assert viewer_size(out) == viewer_size(source) == (30, 44)  # orientation 8 turns 44x30 to 30x44


def test_16bit_png_beyond_pillows_pixel_limit_keeps_its_metadata(tmp_path, monkeypatch):
    """pypng reads 16-bit colour PNGs of any size; neither the probe nor the metadata may need Pillow."""
    source = png_with_metadata(tmp_path / "huge.png", 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 30 x 44 is now "a decompression bomb"
    out = denoised_like(source, tmp_path / "out.png")
    assert png_chunks(out)[b"eXIf"] == camera_exif(8)[6:] and probe_image(out).dtype == "uint16"


def test_png_exif_after_the_image_data_and_compressed_xmp_are_read(tmp_path):
    path = tmp_path / "late.png"
    Image.fromarray(pixels(12, 16)).save(path)
    chunks = list(png.Reader(filename=str(path)).chunks())
    xmp = (b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00" + zlib.compress(XMP))
    with open(path, "wb") as f:  # eXIf and XMP after the image data, as some editors write them
        png.write_chunks(f, [*chunks[:-1], (b"eXIf", camera_exif(6)[6:]), xmp, chunks[-1]])
    out = denoised_like(path, tmp_path / "out.png")
    chunks = png_chunks(out)
    assert chunks[b"eXIf"] == camera_exif(6)[6:] and chunks[b"iTXt"].endswith(XMP)


def test_grey_png_gets_no_rgb_profile(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(pixels(20, 24, 1)[..., 0]).save(path, icc_profile=srgb_profile(), exif=camera_exif(1))
    out = denoised_like(path, tmp_path / "out.png")
    with Image.open(out) as after:
        assert "icc_profile" not in after.info and after.getexif()[271] == "Phonemaker"


# ----------------------------------------------------------------------------------- TIFF


def tiff_with_metadata(path: Path) -> Path:
    tifffile.imwrite(
        path, pixels(36, 28, dtype=np.uint16), photometric="rgb", iccprofile=srgb_profile(),
        description="a scan", software="Scanner 2", datetime="2023:01:02 03:04:05", metadata=None,
        extratags=[(274, "H", 1, 6, True), (271, "s", 0, "Scanmaker", True), (272, "s", 0, "Model S", True),
                   (33432, "s", 0, "(c) someone", True), (700, "B", len(XMP), XMP, True)],
    )
    return path


def tiff_tags(path: Path) -> dict:
    with tifffile.TiffFile(path) as tif:
        return {tag.code: tag.value for tag in tif.pages.first.tags}


def test_tiff_output_keeps_icc_xmp_orientation_and_descriptive_tags(tmp_path):
    source = tiff_with_metadata(tmp_path / "scan.tif")
    out = denoised_like(source, tmp_path / "out" / "scan.tif")
    before, after = tiff_tags(source), tiff_tags(out)
    for code in (34675, 700, 274, 270, 271, 272, 305, 306, 33432):
        assert after[code] == before[code], code
    assert after[34675] == srgb_profile() and after[700] == XMP and int(after[274]) == 6
    assert probe_image(out).dtype == "uint16"
    np.testing.assert_array_equal(read_raw(out)[0], read_raw(source)[0])


def test_jpeg_to_tiff_carries_what_tiff_holds(tmp_path):
    out = denoised_like(phone_jpeg(tmp_path / "phone.jpg"), tmp_path / "phone.tif")
    tags = tiff_tags(out)
    assert tags[34675] == srgb_profile() and tags[700] == XMP and int(tags[274]) == 6
    assert (tags[271], tags[272], tags[306]) == ("Phonemaker", "Phone 12", "2024:05:17 18:04:33")
    assert 34665 not in tags and 34853 not in tags  # tifffile writes no EXIF / GPS sub-IFD


def test_tiff_to_png_and_jpeg_builds_exif_from_the_tags(tmp_path):
    source = tiff_with_metadata(tmp_path / "scan.tif")
    for name in ("scan.png", "scan.jpg"):
        out = denoised_like(source, tmp_path / name)
        with Image.open(out) as after:
            exif = after.getexif()
            assert exif[274] == 6 and exif[271] == "Scanmaker" and exif[33432] == "(c) someone"
            assert after.info["icc_profile"] == srgb_profile()
        assert viewer_size(out) == (36, 28)


# ----------------------------------------------------------------------------------- bad input


def denoised_with_one_warning(source: Path, target: Path, caplog, begins: str) -> Path:
    """``denoised_like``, checking that it logs exactly one warning, one line naming ``source``."""
    with caplog.at_level(logging.WARNING):
        out = denoised_like(source, target)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert warnings[0].startswith(f"{source}: {begins}"), warnings[0]
    return out


def test_corrupt_exif_is_left_out_with_one_warning(tmp_path, caplog):
    data = bytearray(phone_jpeg(tmp_path / "good.jpg").read_bytes())
    start = data.find(b"Exif\x00\x00") + 6
    data[start : start + 16] = b"\xde\xad" * 8  # no longer a TIFF header
    source = tmp_path / "bad_exif.jpg"
    source.write_bytes(bytes(data))
    out = denoised_with_one_warning(source, tmp_path / "out.jpg", caplog, "unreadable EXIF block (not a TIFF file")
    with Image.open(out) as after:
        assert "exif" not in after.info and after.info["icc_profile"] == srgb_profile() and after.info["xmp"] == XMP


@pytest.mark.filterwarnings("error")  # Pillow's own warnings about the block must not reach the user
def test_exif_with_a_tag_past_its_end_is_left_out_with_one_warning(tmp_path, caplog):
    exif = bytearray(camera_exif(6))
    model = exif.find(b"\x01\x10\x00\x02")  # IFD0's Model entry (big-endian): tag 272, ASCII
    exif[model + 4 : model + 8] = (5000).to_bytes(4, "big")  # 5000 characters, far past the block's end
    source = tmp_path / "overrun.jpg"
    Image.fromarray(pixels(16, 24)).save(source, exif=bytes(exif))
    out = denoised_with_one_warning(source, tmp_path / "out.jpg", caplog, "unreadable EXIF block (Tag data larger")
    with Image.open(out) as after:
        assert "exif" not in after.info


def test_undecodable_jpeg_is_a_data_error(tmp_path):
    data = phone_jpeg(tmp_path / "good.jpg").read_bytes()
    scan = data.rfind(b"\xff\xda")  # start of scan: keep the headers, ruin the compressed data
    source = tmp_path / "ruined.jpg"
    source.write_bytes(data[: scan + 2] + b"\x00\x02" + b"\x00" * 40 + b"\xff\xd9")
    with pytest.raises(DataError, match="ruined.jpg") as error:
        read_image(source)
    assert "\n" not in str(error.value)


def test_cmyk_jpeg_is_written_as_rgb_without_its_cmyk_profile(tmp_path, caplog):
    source = tmp_path / "print.jpg"
    Image.fromarray(pixels(24, 32)).convert("CMYK").save(source, icc_profile=cmyk_profile(), exif=camera_exif(1))
    with caplog.at_level(logging.WARNING):
        image, info = read_image(source)
    assert image.shape == (3, 24, 32) and info.photo.icc is None
    assert any(r.getMessage().startswith(f"{source}: CMYK JPEG; denoised in RGB") for r in caplog.records)
    out = write_image(tmp_path / "out.jpg", image, like=info)
    with Image.open(out) as after:
        assert after.mode == "RGB" and "icc_profile" not in after.info and after.getexif()[271] == "Phonemaker"


def test_a_profile_of_another_colour_space_is_never_attached(tmp_path, caplog):
    info = probe_image(write_image(tmp_path / "rgb.png", np.zeros((3, 8, 8))))
    info = replace(info, photo=PhotoMetadata(icc=cmyk_profile()))
    with caplog.at_level(logging.WARNING):
        for name in ("a.jpg", "a.png", "a.tif"):
            write_image(tmp_path / name, np.zeros((3, 8, 8)), like=info)
    assert "icc_profile" not in Image.open(tmp_path / "a.jpg").info
    assert "icc_profile" not in Image.open(tmp_path / "a.png").info
    assert 34675 not in tiff_tags(tmp_path / "a.tif")
    assert sum("ICC profile is for CMYK colour" in r.getMessage() for r in caplog.records) == 3


def test_animated_png_is_refused_in_one_line(tmp_path):
    frames = [Image.fromarray(pixels(16, 16)), Image.fromarray(pixels(16, 16)), Image.fromarray(pixels(16, 16))]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(DataError) as error:
        probe_image(path)
    assert str(error.value) == f"{path}: animated PNG with 3 frames; expected one still image (save one frame as a PNG)"


@pytest.mark.parametrize("same_size", [True, False])
def test_multi_page_tiff_is_refused_in_one_line(tmp_path, same_size):
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for height in (16, 16, 16) if same_size else (16, 12, 8):
            tif.write(pixels(height, 20, 1)[..., 0], photometric="minisblack")
    # before: three grey pages of one size were read as one 3-channel planar image
    with pytest.raises(DataError) as error:
        probe_image(path)
    assert str(error.value) == f"{path}: multi-page TIFF with 3 pages; expected one still image (save each page as its own file)"


def test_tiff_with_a_preview_page_is_one_image(tmp_path):
    path = tmp_path / "with_preview.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(pixels(32, 40), photometric="rgb")
        tif.write(pixels(8, 10), photometric="rgb", subfiletype=1)  # reduced-resolution preview
    assert probe_image(path).shape == (3, 32, 40)


# ----------------------------------------------------------------------------------- predict


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    from tests.test_eval import demo_checkpoint

    return demo_checkpoint(tmp_path_factory)


def test_predict_writes_the_same_photos_and_skips_moving_ones(checkpoint, tmp_path, caplog):
    from denoise.cli.predict import predict
    from tests.test_predict import compose_predict

    source, output = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    phone_jpeg(source / "phone.jpg")
    png_with_metadata(source / "deep.png", 16)
    tiff_with_metadata(source / "scan.tif")
    frames = [Image.fromarray(pixels(16, 16)) for _ in range(2)]
    frames[0].save(source / "anim.png", save_all=True, append_images=frames[1:])
    tifffile.imwrite(source / "pages.tif", np.stack([pixels(16, 16, 1)[..., 0]] * 3), photometric="minisblack")
    cfg = compose_predict([f"ckpt_path={checkpoint}", f"input={source}", f"output={output}"], tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        result = predict(cfg)

    assert sorted(result["failed"]) == ["anim.png", "pages.tif"]
    assert "animated PNG with 2 frames; expected one still image" in result["failed"]["anim.png"]
    assert "multi-page TIFF with 3 pages; expected one still image" in result["failed"]["pages.tif"]
    with Image.open(source / "phone.jpg") as before, Image.open(output / "phone.jpg") as after:
        assert after.info["exif"] == before.info["exif"] and after.info["icc_profile"] == srgb_profile()
        assert after.info["xmp"] == XMP and after.quantization == before.quantization
        assert JpegImagePlugin.get_sampling(after) == JpegImagePlugin.get_sampling(before)
    assert viewer_size(output / "phone.jpg") == viewer_size(source / "phone.jpg") == (64, 96)
    with Image.open(output / "deep.png") as after:
        assert after.info["exif"] == camera_exif(8) and after.info["icc_profile"] == srgb_profile()
    assert png_chunks(output / "deep.png")[b"iTXt"].endswith(XMP) and probe_image(output / "deep.png").dtype == "uint16"
    tags = tiff_tags(output / "scan.tif")
    assert tags[34675] == srgb_profile() and tags[700] == XMP and int(tags[274]) == 6 and tags[271] == "Scanmaker"
    assert not any(r.levelno >= logging.WARNING and "EXIF" in r.getMessage() for r in caplog.records)
