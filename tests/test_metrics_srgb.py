"""The sRGB protocol: 8-bit rounding, per-image PSNR, and both SSIM variants equal to scikit-image's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from denoise.metrics.srgb import SSIM_VARIANTS, psnr_hwc, quantize_8bit, srgb_image_metrics, ssim_hwc, to_hwc


def _pair(seed: int = 0, size: tuple[int, int] = (48, 40)) -> tuple[np.ndarray, np.ndarray]:
    """A smooth uint8 (H, W, 3) image and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    clean = np.stack([120 + 80 * np.sin(x / 7), 100 + 60 * np.cos(y / 5), 90 + 0.8 * (x + y)], -1)
    noisy = clean + rng.normal(0, 20, clean.shape)
    return np.clip(clean, 0, 255).astype(np.uint8), np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.transpose(2, 0, 1) / 255.0)  # float64: exact 8-bit levels


def test_both_ssim_variants_equal_scikit_image_on_uint8():
    clean, noisy = _pair()
    scores = srgb_image_metrics(_chw(noisy), _chw(clean))
    # TBSN's call (Gaussian, sigma 1.5) and AP-BSN's call (skimage defaults), on uint8 with data range 255.
    tbsn = structural_similarity(
        noisy, clean, channel_axis=-1, gaussian_weights=True, sigma=1.5, data_range=255
    )
    apbsn = structural_similarity(noisy, clean, channel_axis=-1, data_range=255)
    assert scores["ssim_gaussian"] == pytest.approx(tbsn, abs=1e-9)
    assert scores["ssim_uniform"] == pytest.approx(apbsn, abs=1e-9)
    assert scores["ssim_gaussian"] != pytest.approx(
        scores["ssim_uniform"], abs=1e-3
    )  # they are different numbers
    assert scores["psnr"] == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255), abs=1e-9)


def test_ssim_variants_are_named_and_exact_on_float_arrays():
    clean, noisy = _pair(1, (33, 57))
    x, y = to_hwc(_chw(noisy)), to_hwc(_chw(clean))
    assert set(SSIM_VARIANTS) == {"ssim_gaussian", "ssim_uniform"}
    assert ssim_hwc(x, y, "ssim_gaussian") == structural_similarity(
        x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5, data_range=1.0
    )
    assert ssim_hwc(x, y, "ssim_uniform") == structural_similarity(x, y, channel_axis=-1, data_range=1.0)
    with pytest.raises(ValueError, match="unknown SSIM variant"):
        ssim_hwc(x, y, "ssim_box")


def test_outputs_are_rounded_to_8_bit_levels_and_clipped():
    x = torch.tensor([-0.2, 0.0, 0.5 / 255, 0.49 / 255, 1.7 / 255, 254.5 / 255, 1.3])
    levels = quantize_8bit(x) * 255
    assert levels.tolist() == pytest.approx([0, 0, 1, 0, 2, 255, 255])
    # srgb_image_metrics rounds the estimate: a value half a level off scores as the level it rounds to.
    clean, _ = _pair(2)
    reference = _chw(clean)
    nudged = reference + 0.4 / 255
    assert srgb_image_metrics(nudged, reference)["psnr"] == 120.0  # exact after rounding: the 1e-12 MSE floor
    assert srgb_image_metrics(nudged, reference, quantize=False)["psnr"] < 60


def test_psnr_is_per_image_then_averaged():
    clean_a, noisy_a = _pair(3)
    clean_b = clean_a.copy()
    noisy_b = np.clip(clean_b.astype(int) + 2, 0, 255).astype(np.uint8)
    per_image = [psnr_hwc(n / 255.0, c / 255.0) for n, c in ((noisy_a, clean_a), (noisy_b, clean_b))]
    pooled_mse = np.mean(
        [np.mean((n / 255.0 - c / 255.0) ** 2) for n, c in ((noisy_a, clean_a), (noisy_b, clean_b))]
    )
    assert np.mean(per_image) != pytest.approx(10 * np.log10(1 / pooled_mse), abs=0.1)
    assert per_image[1] == pytest.approx(
        10 * np.log10(255**2 / np.mean((noisy_b.astype(float) - clean_b) ** 2))
    )
