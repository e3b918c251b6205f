"""HSI metrics (denoise.metrics.hsi) against their definitions and scikit-image."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from denoise.metrics.hsi import ergas, mpsnr, mssim, sam_degrees, sam_radians


@pytest.fixture
def pair():
    generator = torch.Generator().manual_seed(0)
    reference = torch.rand(2, 6, 20, 24, generator=generator, dtype=torch.float64)
    noisy = (reference + 0.1 * torch.randn(reference.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return noisy, reference


def test_mpsnr_is_the_mean_of_per_band_psnr(pair):
    x, ref = pair
    expected = [np.mean([peak_signal_noise_ratio(ref[i, b].numpy(), x[i, b].numpy(), data_range=1)
                         for b in range(6)]) for i in range(2)]
    np.testing.assert_allclose(mpsnr(x, ref).numpy(), expected, rtol=1e-10)
    assert mpsnr(x, ref).shape == (2,)
    assert mpsnr(ref, ref).tolist() == [120.0, 120.0]  # exact bands: capped, never inf


def test_mssim_matches_skimage_per_band_default_and_gaussian(pair):
    x, ref = pair
    uniform = [np.mean([structural_similarity(x[i, b].numpy(), ref[i, b].numpy(), data_range=1) for b in range(6)])
               for i in range(2)]
    np.testing.assert_allclose(mssim(x, ref).numpy(), uniform, rtol=1e-9)
    gaussian = [np.mean([structural_similarity(x[i, b].numpy(), ref[i, b].numpy(), data_range=1,
                                               gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                         for b in range(6)]) for i in range(2)]
    np.testing.assert_allclose(mssim(x, ref, gaussian=True).numpy(), gaussian, rtol=1e-9)
    assert mssim(ref, ref).tolist() == pytest.approx([1.0, 1.0])


def test_sam_is_scale_invariant_and_measures_angles():
    ref = torch.rand(1, 5, 4, 4) + 0.1
    assert sam_radians(3 * ref, ref).item() == pytest.approx(0.0, abs=1e-6)
    a = torch.zeros(1, 2, 1, 1)
    a[0, 0] = 1.0
    b = torch.zeros(1, 2, 1, 1)
    b[0, 1] = 1.0
    assert sam_radians(a, b).item() == pytest.approx(math.pi / 2)
    assert sam_degrees(a, b).item() == pytest.approx(90.0)
    diagonal = torch.ones(1, 2, 1, 1)
    assert sam_degrees(a, diagonal).item() == pytest.approx(45.0)


def test_sam_counts_zero_spectra_as_zero_angle_instead_of_nan():
    x = torch.rand(1, 4, 3, 3)
    x[..., 0, 0] = 0
    value = sam_radians(x, x.clone())
    assert torch.isfinite(value).all() and value.item() == pytest.approx(0.0, abs=1e-6)


def test_ergas_definition(pair):
    x, ref = pair
    mse = (x - ref).pow(2).mean(dim=(2, 3))
    expected = 100 * torch.sqrt((mse / ref.mean(dim=(2, 3)) ** 2).mean(dim=1))
    torch.testing.assert_close(ergas(x, ref), expected)
    assert ergas(ref, ref).tolist() == [0.0, 0.0]


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="same shape"):
        mpsnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
