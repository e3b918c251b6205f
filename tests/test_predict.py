"""predict.py: any format and size in, the same format, bit depth and size out; bad files skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import png
import pytest
import scipy.io
import tifffile
from PIL import Image

from denoise.cli.predict import denoised_channels, predict, read_input
from denoise.data.formats.image_files import probe_image, read_raw, write_image
from denoise.errors import ConfigError, DataError
from tests.conftest import CONFIGS, run_entry
from tests.test_eval import demo_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return demo_checkpoint(tmp_path_factory)


def compose_predict(overrides: list[str], run_dir: Path):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            "predict", overrides=[*overrides, f"paths.output_dir={run_dir}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def _image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A float (C, H, W) image in [0, 1] with structure and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    planes = [0.5 + 0.3 * np.sin(x / (3 + c)) * np.cos(y / 4) for c in range(channels)]
    return np.clip(np.stack(planes) + rng.normal(0, 0.08, (channels, height, width)), 0, 1)


def test_predict_folder_keeps_formats_and_skips_a_corrupt_file(checkpoint, tmp_path):
    source, output = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    write_image(source / "photo.png", _image(37, 45))  # 8-bit RGB, odd size
    rgb16 = (_image(24, 40, seed=1).transpose(1, 2, 0) * 65535).astype(np.uint16)
    with open(source / "deep.png", "wb") as f:  # 16-bit RGB PNG
        png.Writer(40, 24, greyscale=False, bitdepth=16).write(f, rgb16.reshape(24, -1))
    tifffile.imwrite(
        source / "scan16.tif",
        (_image(33, 28, seed=2).transpose(1, 2, 0) * 65535).astype(np.uint16),
        photometric="rgb",
    )
    tifffile.imwrite(
        source / "scan8.tif",
        (_image(20, 20, seed=3).transpose(1, 2, 0) * 255).astype(np.uint8),
        photometric="rgb",
    )
    Image.fromarray((_image(32, 48, seed=4).transpose(1, 2, 0) * 255).astype(np.uint8)).save(
        source / "shot.jpg"
    )
    np.save(source / "array.npy", _image(26, 31, seed=5).astype(np.float32))  # (C, H, W) float
    scipy.io.savemat(
        source / "cube.mat", {"img": (_image(30, 22, seed=6).transpose(1, 2, 0) * 255).astype(np.uint8)}
    )
    data = (source / "photo.png").read_bytes()
    (source / "broken.png").write_bytes(data[: len(data) // 2])  # truncated
    write_image(source / "grey.png", _image(20, 20, channels=1))  # wrong channel count for an RGB model

    result = run_entry(
        "predict.py",
        [f"ckpt_path={checkpoint}", f"input={source}", f"output={output}", "inference.tile_size=32",
         "inference.tile_overlap=8"],
        tmp_path / "run",
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "skipped broken.png" in result.stderr and "truncated PNG" in result.stderr
    assert "grey.png: the image has 1 channel(s) but the model takes 3" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Denoised 7 of 9 file(s)" in result.stdout + result.stderr

    for name in ("photo.png", "deep.png", "scan16.tif", "scan8.tif", "shot.jpg", "array.npy"):
        before, after = probe_image(source / name), probe_image(output / name)
        assert (after.format, after.dtype, after.shape, after.axis_order) == (
            before.format,
            before.dtype,
            before.shape,
            before.axis_order,
        ), name
    assert probe_image(output / "deep.png").dtype == "uint16"
    written = scipy.io.loadmat(output / "cube.mat")
    assert written["img"].dtype == np.uint8 and written["img"].shape == (30, 22, 3)
    assert not (output / "broken.png").exists() and not (output / "grey.png").exists()


def test_predict_one_large_file_in_tiles(checkpoint, tmp_path):
    image = tmp_path / "big.png"
    write_image(image, _image(150, 131))
    result = predict(
        compose_predict(
            [
                f"ckpt_path={checkpoint}",
                f"input={image}",
                f"output={tmp_path / 'out'}",
                "inference.tile_size=64",
                "inference.tile_overlap=16",
            ],
            tmp_path / "run",
        )
    )
    assert result["failed"] == {} and result["written"] == [str(tmp_path / "out" / "big.png")]
    out = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert out.shape == (150, 131, 3) and out.dtype == np.uint8 and out.std() > 0


def test_predict_input_errors_are_one_line(checkpoint, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        predict(
            compose_predict(
                [f"ckpt_path={checkpoint}", f"input={tmp_path / 'none'}", f"output={tmp_path}"],
                tmp_path / "run",
            )
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images"):
        predict(
            compose_predict(
                [f"ckpt_path={checkpoint}", f"input={tmp_path / 'empty'}", f"output={tmp_path}"],
                tmp_path / "run",
            )
        )
    write_image(tmp_path / "a.png", _image(8, 8))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        predict(
            compose_predict(
                [f"ckpt_path={checkpoint}", f"input={tmp_path / 'a.png'}", f"output={tmp_path / 'file'}"],
                tmp_path / "run",
            )
        )


def _rgba(height: int, width: int, seed: int = 7) -> np.ndarray:
    """A float (4, H, W) image: structured colour and an alpha ramp with fully clear and opaque parts."""
    alpha = np.clip(np.linspace(-0.2, 1.2, width)[None].repeat(height, 0), 0, 1)
    return np.concatenate([_image(height, width, seed=seed), alpha[None]])


def test_predict_keeps_alpha_and_denoises_the_colour_channels(checkpoint, tmp_path):
    source, output = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    write_image(source / "web.png", _rgba(30, 36))  # 8-bit RGBA
    rgba16 = (_rgba(24, 28, seed=8).transpose(1, 2, 0) * 65535).astype(np.uint16)
    with open(source / "deep.png", "wb") as f:  # 16-bit RGBA
        png.Writer(28, 24, greyscale=False, alpha=True, bitdepth=16).write(f, rgba16.reshape(24, -1))
    tifffile.imwrite(source / "scan.tif", (_rgba(26, 22, seed=9).transpose(1, 2, 0) * 255).astype(np.uint8),
                     photometric="rgb", extrasamples=["unassalpha"])
    palette = Image.fromarray((_image(20, 24, seed=10)[0] * 255).astype(np.uint8)).convert("P")
    palette.info["transparency"] = 0
    palette.save(source / "palette.png", transparency=0)  # palette with a transparent entry: RGBA

    result = predict(compose_predict([f"ckpt_path={checkpoint}", f"input={source}", f"output={output}"],
                                     tmp_path / "run"))
    assert result["failed"] == {}
    for name in ("web.png", "deep.png", "scan.tif", "palette.png"):
        before, before_info = read_raw(source / name)
        after, after_info = read_raw(output / name)
        assert before_info.alpha and after_info.alpha, name
        assert (after_info.format, after_info.dtype, after_info.shape) == (
            before_info.format, before_info.dtype, before_info.shape), name
        assert np.array_equal(after[3], before[3]), name  # alpha exactly as it was
        assert not np.array_equal(after[:3], before[:3]), name  # colour denoised


def test_channel_counts_that_do_not_fit_the_model_are_named(tmp_path):
    write_image(tmp_path / "grey.png", _image(16, 16, channels=1))
    write_image(tmp_path / "colour.png", _image(16, 16))
    grey_alpha = np.concatenate([_image(16, 16, channels=1), np.ones((1, 16, 16))])
    write_image(tmp_path / "grey_alpha.png", grey_alpha)
    with pytest.raises(DataError, match=r"grey.png: the image has 1 channel\(s\) but the model takes 3"):
        read_input(tmp_path / "grey.png", None, 3)
    with pytest.raises(DataError, match=r"colour.png: the image has 3 channel\(s\) but the model takes 1"):
        read_input(tmp_path / "colour.png", None, 1)
    with pytest.raises(DataError, match=r"the image has 1 channel\(s\) and an alpha channel but the model takes 3"):
        read_input(tmp_path / "grey_alpha.png", None, 3)
    image, info = read_input(tmp_path / "grey_alpha.png", None, 1)  # a grey model: grey denoised, alpha kept
    assert info.alpha and denoised_channels(info, 1) == 1 and image.shape == (2, 16, 16)
    _, info = read_input(tmp_path / "grey_alpha.png", None, 2)  # a model trained on grey+alpha takes both
    assert denoised_channels(info, 2) == 2


@pytest.mark.parametrize("case", ["into_the_input", "recursive_feedback", "unwritable"])
def test_outputs_are_checked_before_the_model_loads(case, tmp_path, monkeypatch):
    """A run that cannot write its results stops in one line before any denoising."""
    import denoise.cli.predict as predict_module

    def no_loading(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr(predict_module, "load_model", no_loading)
    source = tmp_path / "in"
    source.mkdir()
    write_image(source / "a.png", _image(8, 8))
    (tmp_path / "file").write_text("x")
    output, recursive, expected = {
        "into_the_input": (f"{source}/.", "false", "would overwrite the input files a.png"),
        "recursive_feedback": (source / "out", "true", "inside the input folder"),
        "unwritable": (tmp_path / "file" / "out", "false", "cannot write there"),
    }[case]
    cfg = compose_predict(["ckpt_path=model.ckpt", f"input={source}", f"output={output}", f"recursive={recursive}"],
                          tmp_path / "run")
    with pytest.raises(ConfigError, match=expected):
        predict(cfg)
