"""Per-band noise level of a cube from the noisy cube alone (denoise/data/noise_level.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from denoise.data.noise_level import band_sigmas
from denoise.errors import DataError

RNG = np.random.default_rng(0)


def smooth_cube(bands=16, height=64, width=72) -> np.ndarray:
    y, x = np.mgrid[:height, :width] / max(height, width)
    return np.stack([(np.sin(5 * x + b / 4) * np.cos(4 * y - b / 7) + 1) * 1000 for b in range(bands)]).astype(np.float32)


def with_noise(cube: np.ndarray, sigmas: np.ndarray, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(cube.shape).astype(np.float32)
    return cube + noise * sigmas[:, None, None].astype(np.float32)


def test_known_sigma_per_band_on_a_smooth_cube():
    sigmas = np.linspace(5, 80, 16)
    estimate = band_sigmas(with_noise(smooth_cube(), sigmas))
    np.testing.assert_allclose(estimate, sigmas, rtol=0.12)
    assert band_sigmas(smooth_cube()).max() < 2.0  # no noise: the scene itself reads as (almost) none


def test_constant_bands_read_zero_and_bad_shapes_are_refused():
    cube = with_noise(smooth_cube(), np.full(16, 20.0))
    cube[3] = 0.0  # a zeroed water-absorption band
    cube[4] = 7.0
    estimate = band_sigmas(cube)
    assert estimate[3] == 0 and estimate[4] == 0 and np.isfinite(estimate).all()
    np.testing.assert_allclose(np.delete(estimate, [3, 4]), 20.0, rtol=0.12)
    with pytest.raises(DataError, match=r"expected a \(bands, H, W\) cube, got shape \(64, 72\)"):
        band_sigmas(cube[0])
    with pytest.raises(DataError, match="1x72 cube has no 2x2 block"):
        band_sigmas(cube[:, :1])


@pytest.mark.parametrize("low, high", [(20.0, 100.0), (100.0, 300.0)])
def test_real_jasper_ridge_with_synthetic_per_band_noise(shared_data, low, high):
    """The real cube has its own (real) noise: the truth of the noisy cube is the quadrature sum of
    its own sigma and the synthetic one. The spatial step alone is 2-3x off on textured bands."""
    raw = scipy.io.loadmat(shared_data / "hsi" / "jasper_ridge.mat")["jasper_ridge"]
    cube = np.ascontiguousarray(raw.transpose(2, 0, 1), dtype=np.float32)  # (198, 100, 100), 0-5437
    own = band_sigmas(cube)
    assert 3 < np.median(own) < 15  # AVIRIS at this scale: a few units of 5000
    sigmas = RNG.permutation(np.linspace(low, high, len(cube)))
    estimate = band_sigmas(with_noise(cube, sigmas, seed=1))
    error = np.abs(estimate / np.sqrt(sigmas**2 + own**2) - 1)
    # within 15 % on 95 % of the bands, 25 % on every band (single bands vary with the noise drawn)
    assert np.quantile(error, 0.95) < 0.15 and error.max() < 0.25 and np.median(error) < 0.05
    if low >= 100:  # noise well above the cube's own: the synthetic sigma alone is recovered
        alone = np.abs(estimate / sigmas - 1)
        assert np.quantile(alone, 0.9) < 0.15 and np.median(alone) < 0.05
