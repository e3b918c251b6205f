"""denoise.data.formats: every image and MATLAB format round-trips; bad files fail in one line naming them."""

import numpy as np
import pytest
import scipy.io
import tifffile
import torch
from PIL import Image

from denoise.data.formats.image_files import (
    ImageInfo,
    image_format,
    probe_image,
    probe_images,
    read_image,
    read_raw,
    write_image,
)
from denoise.data.formats.matfile import choose_key, is_v73, mat_keys, read_mat
from denoise.errors import DataError
from tests.data_fixtures import write_mat_v73

RNG = np.random.default_rng(0)


def random_chw(channels, dtype, height=12, width=17):
    if np.dtype(dtype).kind == "f":
        return RNG.random((channels, height, width)).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max + 1, (channels, height, width)).astype(dtype)


def original(path, dtype):
    """The ImageInfo of a file of ``dtype`` at ``path`` (what a probe of the user's input gives)."""
    return ImageInfo(str(path), image_format(path), np.dtype(dtype).name, 0, 0, 0)


@pytest.mark.parametrize(
    "name, channels, dtype",
    [("rgb8.png", 3, np.uint8), ("gray8.png", 1, np.uint8), ("rgba8.png", 4, np.uint8),
     ("rgb16.png", 3, np.uint16), ("gray16.png", 1, np.uint16), ("rgb16.tif", 3, np.uint16),
     ("bands.tif", 5, np.float32), ("gray8.tif", 1, np.uint8), ("bands.npy", 4, np.float32)],
)
def test_lossless_formats_round_trip_with_their_bit_depth(tmp_path, name, channels, dtype):
    stored = random_chw(channels, dtype)
    scale = np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, stored)
    else:
        write_image(path, stored / scale, like=original(path, dtype))
    image, info = read_image(path)
    assert info.dtype == np.dtype(dtype).name and info.bit_depth == np.dtype(dtype).itemsize * 8
    assert image.shape == (channels, 12, 17) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    raw, _ = read_raw(path)
    np.testing.assert_array_equal(raw, stored)
    # written back "like" the input: same samples, dtype and axis order
    out = write_image(tmp_path / f"out_{name}", image, like=info)
    again, again_info = read_raw(out)
    assert again_info.dtype == info.dtype and again_info.axis_order == info.axis_order
    np.testing.assert_allclose(again.astype(np.float64), stored.astype(np.float64), atol=1e-6 * scale)


def test_16bit_png_keeps_all_16_bits(tmp_path):
    stored = np.array([[[0, 1, 65534, 65535]]] * 3, dtype=np.uint16)
    path = write_image(tmp_path / "a.png", stored / 65535.0, like=original(tmp_path / "a.png", np.uint16))
    image, info = read_image(path)
    assert info.bit_depth == 16
    assert torch.equal((image * 65535).round().to(torch.int64), torch.from_numpy(stored.astype(np.int64)))


def test_jpeg_reads_as_8bit_rgb_and_writes_back(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(RNG.integers(0, 256, (16, 20, 3), dtype=np.uint8)).save(path, quality=95)
    image, info = read_image(path)
    assert (info.format, info.dtype, image.shape) == ("jpeg", "uint8", (3, 16, 20))
    out = write_image(tmp_path / "out.jpg", image, like=info)
    assert probe_image(out).shape == (3, 16, 20)


def test_default_output_is_8bit_png_and_float32_tiff(tmp_path):
    image = torch.rand(3, 8, 8)
    assert probe_image(write_image(tmp_path / "a.png", image)).dtype == "uint8"
    assert probe_image(write_image(tmp_path / "a.tif", image)).dtype == "float32"


def truncate(path, keep=0.6):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".npy"])
def test_truncated_files_are_named_in_one_line(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    array = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    if suffix == ".npy":
        np.save(path, array)
    elif suffix == ".tif":
        tifffile.imwrite(path, array, photometric="rgb")
    else:
        Image.fromarray(array).save(path)
    truncate(path)
    with pytest.raises(DataError, match="broken") as error:
        probe_image(path)
    assert "truncated" in str(error.value) and "\n" not in str(error.value)


def test_garbage_and_unsupported_files_are_named(tmp_path):
    garbage = tmp_path / "noise.png"
    garbage.write_bytes(b"this is not a png at all")
    with pytest.raises(DataError, match="noise.png: not a PNG"):
        probe_image(garbage)
    (tmp_path / "x.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match="unsupported image type '.bmp'"):
        probe_image(tmp_path / "x.bmp")


def test_probe_images_skips_bad_files_only_when_asked(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(good)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "bad.png")
    bad = truncate(tmp_path / "bad.png")
    with pytest.raises(DataError, match="bad.png.*data.skip_bad=true"):
        probe_images([good, bad])
    with pytest.warns(UserWarning, match="bad.png"):
        assert [p for p, _ in probe_images([good, bad], skip_bad=True)] == [good]


def test_decode_errors_inside_a_complete_looking_file_are_named(tmp_path):
    path = tmp_path / "corrupt.png"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    data[100:400] = b"\x00" * 300  # damage the compressed stream, keep IEND
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="corrupt.png"):
        read_image(path)


# ----------------------------------------------------------------------------- MATLAB files


def test_v5_and_v73_mat_files_read_in_the_same_matlab_axis_order(tmp_path):
    cube = RNG.random((6, 7, 3)).astype(np.float32)
    scipy.io.savemat(tmp_path / "v5.mat", {"rad": cube})
    write_mat_v73(tmp_path / "v73.mat", {"rad": cube})
    assert not is_v73(tmp_path / "v5.mat") and is_v73(tmp_path / "v73.mat")
    assert (tmp_path / "v73.mat").read_bytes().startswith(b"MATLAB 7.3 MAT-file")
    np.testing.assert_array_equal(read_mat(tmp_path / "v5.mat", "rad"), cube)
    np.testing.assert_array_equal(read_mat(tmp_path / "v73.mat", "rad"), cube)


@pytest.mark.parametrize("writer", ["v5", "v73"])
def test_missing_mat_key_lists_the_keys_the_file_has(tmp_path, writer):
    path = tmp_path / "cube.mat"
    arrays = {"gt": np.zeros((4, 4, 2)), "input": np.ones((4, 4, 2))}
    scipy.io.savemat(path, arrays) if writer == "v5" else write_mat_v73(path, arrays)
    assert sorted(mat_keys(path)) == ["gt", "input"]
    with pytest.raises(DataError, match=r"cube.mat: no variable 'rad' \(it has gt 4x4x2, input 4x4x2\)"):
        choose_key(path, "rad")
    assert choose_key(path, None, ("rad", "gt")) == "gt"
    with pytest.raises(DataError, match="more than one array.*set data.key"):
        choose_key(path, None, ("rad",))


def test_unreadable_mat_file_is_named(tmp_path):
    path = tmp_path / "broken.mat"
    path.write_bytes(b"\x00" * 50)
    with pytest.raises(DataError, match="broken.mat: not a readable MATLAB"):
        mat_keys(path)


@pytest.mark.parametrize(
    "stored, axis_order",
    [(RNG.integers(0, 256, (12, 17, 3)).astype(np.uint8), "hwc"),
     (RNG.random((2, 12, 17)).astype(np.float32), "chw"),
     (RNG.integers(0, 65536, (12, 17)).astype(np.uint16), "hw")],
)
def test_mat_images_round_trip_with_their_variable_dtype_and_axis_order(tmp_path, stored, axis_order):
    scipy.io.savemat(tmp_path / "in.mat", {"other": np.zeros(3), "img": stored})
    info = probe_image(tmp_path / "in.mat", mat_key="img")
    assert (info.format, info.key, info.axis_order) == ("mat", "img", axis_order)
    image, info = read_image(tmp_path / "in.mat", info)
    assert info.dtype == stored.dtype.name and image.shape == info.shape and image.dtype == torch.float32
    out = write_image(tmp_path / "out.mat", image, like=info)
    written = scipy.io.loadmat(out)["img"]
    assert written.dtype == stored.dtype and np.array_equal(written, stored)


def test_mat_image_without_a_numeric_sample_type_is_named(tmp_path):
    scipy.io.savemat(tmp_path / "waves.mat", {"img": np.ones((4, 5)) * 1j})
    with pytest.raises(DataError, match="waves.mat: variable 'img' is complex128; expected integer or float"):
        read_image(tmp_path / "waves.mat")
