"""Detail restoration (denoise/ops/detail.py): what it must give back, and what it must leave alone."""

import numpy as np
import pytest
import torch

from einops import rearrange

from denoise.ops.detail import (
    DetailRestoration,
    box_mean,
    correlation_sum,
    gaussian_blur,
    interpolate,
    restore_detail,
    window_sums,
)


def textured_scene(size: int = 128, seed: int = 0) -> torch.Tensor:
    """(1, 3, size, size) in [0.2, 0.8]: flat left half, fine stripes and a gradient on the right."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    stripes = 0.15 * torch.sin(xx * 1.3) * (xx >= size // 2)
    gradient = 0.3 * yy / size
    base = torch.stack([0.3 + gradient, 0.5 + 0.0 * gradient, 0.4 + 0.5 * gradient])
    return (base + stripes).clamp(0.2, 0.8)[None].double()


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().mean())


def test_a_perfect_estimate_stays_close_to_itself():
    clean = textured_scene()
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1), dtype=clean.dtype)
    restored = restore_detail(noisy, clean)
    # It may add back a little noise where local energy fluctuates, never much of it.
    assert mse(restored, clean) < 0.05 * mse(noisy, clean)


def test_texture_smoothed_away_comes_back():
    clean = textured_scene()
    noisy = clean + 0.01 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2), dtype=clean.dtype)
    smoothed = torch.cat([gaussian_blur(plane[None, None], 2.0)[0] for plane in clean[0]])[None]
    restored = restore_detail(noisy, smoothed)
    assert mse(restored, clean) < 0.25 * mse(smoothed, clean)
    assert mse(restored, clean) < mse(noisy, clean)  # and it still removes noise


def test_a_colour_cast_is_removed():
    clean = textured_scene()
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3), dtype=clean.dtype)
    cast = clean + torch.tensor([0.04, -0.04, 0.03], dtype=clean.dtype).view(1, 3, 1, 1)
    restored = restore_detail(noisy, cast)
    bias = (restored - clean).mean(dim=(0, 2, 3))
    assert bias.abs().max() < 0.005
    assert mse(restored, clean) < 0.1 * mse(cast, clean)


def correlated_noise(shape, std: float, seed: int) -> torch.Tensor:
    """Noise smeared over neighbouring pixels, as demosaicing smears real camera noise."""
    white = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    planes = rearrange(white, "b c h w -> (b c) 1 h w")
    smeared = rearrange(gaussian_blur(planes, 1.2), "(b c) 1 h w -> b c h w", b=shape[0])
    return std * smeared / smeared.std()


def test_correlated_noise_stays_out_of_a_good_estimate():
    """Its low-pass is not small: the local-mean step must see it as noise, not as a colour error."""
    clean = textured_scene(192)
    noise = correlated_noise(clean.shape, 0.08, seed=7)
    restored = restore_detail(clean + noise, clean)
    assert correlation_sum(noise[0, 0], torch.ones(192, 192, dtype=torch.bool), 3) > 5
    assert mse(restored, clean) < 0.03 * mse(clean + noise, clean)
    # The local-mean step alone adds a third of what adding the whole low-pass would.
    means_only = restore_detail(clean + noise, clean, DetailRestoration(window=0))
    ungated = clean + gaussian_blur(rearrange(noise, "1 c h w -> c 1 h w"), 8.0).permute(1, 0, 2, 3)
    assert mse(means_only, clean) < 0.5 * mse(ungated, clean)


def test_a_colour_cast_under_correlated_noise_is_still_removed():
    clean = textured_scene(192)
    noisy = clean + correlated_noise(clean.shape, 0.08, seed=8)
    cast = clean + torch.tensor([0.05, -0.05, 0.04], dtype=clean.dtype).view(1, 3, 1, 1)
    restored = restore_detail(noisy, cast)
    assert mse(restored, clean) < 0.2 * mse(cast, clean)


def test_noise_variance_follows_intensity():
    """Signal-dependent noise: the restoration must not read bright-region noise as detail."""
    clean = textured_scene(seed=4)[:, :, :, :64].repeat(1, 1, 1, 2)  # flat ramps only
    sigma = 0.02 + 0.1 * clean
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(5), dtype=clean.dtype)
    restored = restore_detail(noisy, clean)
    assert mse(restored, clean) < 0.05 * mse(noisy, clean)


def test_batch_channels_shape_and_dtype_are_kept():
    clean = textured_scene(64).float().repeat(2, 1, 1, 1)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(6))
    restored = restore_detail(noisy, clean)
    assert restored.shape == clean.shape and restored.dtype == torch.float32
    # Each image is restored on its own: the batch gives what the images give one by one.
    alone = torch.cat([restore_detail(noisy[i : i + 1], clean[i : i + 1]) for i in range(2)])
    assert torch.allclose(restored, alone)


def test_tiny_images_and_switched_off_steps():
    noisy, estimate = torch.rand(1, 1, 5, 7), torch.rand(1, 1, 5, 7)
    assert restore_detail(noisy, estimate).shape == (1, 1, 5, 7)
    off = DetailRestoration(mean_sigma=0, window=0)
    assert torch.equal(restore_detail(noisy, estimate, off), estimate)


def test_interpolate_matches_numpy():
    xp, fp = torch.tensor([0.1, 0.4, 0.5, 0.9]), torch.tensor([1.0, 3.0, 2.0, 5.0])
    x = torch.linspace(-0.2, 1.2, 57)
    assert np.allclose(interpolate(x, xp, fp).numpy(), np.interp(x.numpy(), xp.numpy(), fp.numpy()), atol=1e-6)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(window=4), "window=4"),
        (dict(mean_sigma=-1), "mean_sigma=-1"),
        (dict(flat_fraction=0), "flat_fraction=0"),
        (dict(oversubtract=0), "oversubtract=0"),
        (dict(correlation_lags=-1), "correlation_lags=-1"),
        (dict(intensity_bins=0), "intensity_bins=0"),
    ],
)
def test_bad_options_name_the_value(options, message):
    with pytest.raises(ValueError, match=message):
        DetailRestoration(**options)


def test_mismatched_shapes_are_one_line():
    with pytest.raises(ValueError, match=r"same \(B, C, H, W\) shape"):
        restore_detail(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


@pytest.mark.parametrize("size", [1, 5, 9, 17])
def test_the_separable_box_mean_is_the_mean_over_each_window(size):
    x = torch.rand(2, 1, 23, 31, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    r = size // 2
    padded = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # (N, 1, H, W, size, size)
    assert torch.allclose(box_mean(x, size), windows.mean(dim=(-2, -1)), atol=1e-14)


@pytest.mark.parametrize("size", [1, 2, 8, 17])
def test_window_sums_are_the_sums_over_each_window_of_any_leading_shape(size):
    x = torch.rand(3, 2, 19, 26, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    windows = x.unfold(-2, size, 1).unfold(-2, size, 1)  # (3, 2, H - size + 1, W - size + 1, size, size)
    assert torch.allclose(window_sums(x, size), windows.sum(dim=(-2, -1)), atol=1e-13)
    assert torch.allclose(window_sums(x[0, 0], size), windows[0, 0].sum(dim=(-2, -1)), atol=1e-13)
