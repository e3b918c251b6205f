"""Appearance metrics (denoise.metrics.appearance): edge contrast kept and blotches in flat areas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from denoise.metrics.appearance import LUMA_WEIGHTS, appearance_metrics


def scene(size: int = 96) -> np.ndarray:
    """Flat regions and sharp edges: two halves, a disc, a different scale per channel."""
    y, x = np.mgrid[:size, :size]
    plane = np.where(x < size // 2, 0.25, 0.65) + 0.2 * ((y - size / 2) ** 2 + (x - size / 3) ** 2 < (size / 6) ** 2)
    return np.stack([plane, 0.8 * plane + 0.1, 0.6 * plane + 0.2], -1)


def blurred(image: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([ndimage.gaussian_filter(image[..., c], sigma) for c in range(image.shape[-1])], -1)


def bump(size: int, centre: tuple[int, int], sigma: float) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * sigma**2))


def test_the_clean_photo_is_perfectly_sharp_and_free_of_blotches():
    clean = scene()
    assert appearance_metrics(clean, clean) == pytest.approx({"edge_contrast": 1, "blotch_luma": 0, "blotch_chroma": 0})


def test_edge_contrast_falls_with_blur_and_rises_with_sharpening():
    clean = scene()
    soft, softer = (appearance_metrics(blurred(clean, s), clean)["edge_contrast"] for s in (0.8, 2.0))
    sharpened = appearance_metrics(clean + 0.5 * (clean - blurred(clean, 1.0)), clean)["edge_contrast"]
    assert softer < soft < 0.95 and sharpened > 1.05


def test_noise_left_in_the_output_does_not_count_as_sharpness():
    clean = scene()
    noisy = clean + 0.05 * np.random.default_rng(0).standard_normal(clean.shape)
    contrast = appearance_metrics(noisy, clean)["edge_contrast"]
    assert contrast == pytest.approx(1, abs=0.03)
    # The plain ratio of gradient magnitudes would have called the noisy image much sharper.
    magnitude = lambda im: np.hypot(ndimage.sobel(im @ LUMA_WEIGHTS, 0), ndimage.sobel(im @ LUMA_WEIGHTS, 1)).mean()
    assert magnitude(noisy) > 1.3 * magnitude(clean)


def test_a_cast_over_the_whole_photo_is_not_a_blotch():
    clean = scene()
    metrics = appearance_metrics(clean + np.array([0.03, -0.01, 0.02]), clean)
    assert metrics["blotch_luma"] == pytest.approx(0, abs=1e-9) and metrics["blotch_chroma"] == pytest.approx(0, abs=1e-9)


def test_colour_and_brightness_blotches_are_told_apart():
    clean, size = scene(), 96
    blob = 0.1 * bump(size, (20, 20), 6)[..., None]  # in the flat top-left
    grey = appearance_metrics(clean + blob * np.ones(3), clean)
    # A colour shift of zero luma: red up, green down by the amount that keeps 0.299 R + 0.587 G.
    colour = appearance_metrics(clean + blob * np.array([1.0, -0.299 / 0.587, 0.0]), clean)
    assert grey["blotch_luma"] > 1 and grey["blotch_chroma"] == pytest.approx(0, abs=1e-9)
    assert colour["blotch_chroma"] > 1 and colour["blotch_luma"] == pytest.approx(0, abs=1e-9)
    # Blotches are measured in 8-bit levels: twice the blob, twice the number.
    double = appearance_metrics(clean + 2 * blob * np.ones(3), clean)
    assert double["blotch_luma"] == pytest.approx(2 * grey["blotch_luma"])


def test_single_channel_images_have_luma_only():
    clean = scene()[..., :1]
    metrics = appearance_metrics(clean + 0.1 * bump(96, (20, 20), 6)[..., None], clean)
    assert metrics["blotch_luma"] > 1 and metrics["blotch_chroma"] == 0 and metrics["edge_contrast"] == pytest.approx(1, abs=0.01)


@pytest.mark.parametrize("output, clean", [(np.zeros((8, 8, 3)), np.zeros((8, 9, 3))), (np.zeros((8, 8, 2)),) * 2,
                                           (np.zeros((8, 8)),) * 2])
def test_wrong_shapes_are_named(output, clean):
    with pytest.raises(ValueError, match=r"appearance_metrics: output \(8, 8.*must be the same"):
        appearance_metrics(output, clean)
