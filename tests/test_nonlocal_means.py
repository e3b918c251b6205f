"""The non-local means blend of the photos recipe (denoise/ops/nonlocal_means.py)."""

import numpy as np
import pytest
import torch
from einops import rearrange
from skimage.restoration import denoise_nl_means

from denoise.ops.detail import gaussian_blur
from denoise.ops.nonlocal_means import NonLocalMeans, blend_nonlocal, nonlocal_means, residual_sigmas


def textured(height: int = 48, width: int = 56) -> torch.Tensor:
    """A (1, 3, H, W) image with stripes and smooth colour: texture a blur loses and patches repeat."""
    y, x = torch.meshgrid(torch.arange(height) / width, torch.arange(width) / width, indexing="ij")
    return torch.stack([0.5 + 0.3 * torch.sin(40 * x), 0.4 + 0.2 * torch.cos(6 * y), 0.3 + 0.4 * x * y])[None].double()


def noisy_version(clean: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    return clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)


def blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    planes = gaussian_blur(rearrange(image, "b c h w -> (b c) 1 h w"), sigma)
    return rearrange(planes, "(b c) 1 h w -> b c h w", b=image.shape[0])


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).square().mean().sqrt())


def test_a_dense_search_denoises_as_scikit_image_does():
    # search_stride=1 is textbook non-local means. scikit-image's fast mode weighs the same patch
    # distances with an approximate exponential and accumulates them differently, so the two denoise
    # equally well and differ per pixel by about a tenth of the noise, not bit for bit.
    clean = textured()
    noisy = noisy_version(clean, 0.08)
    ours = nonlocal_means(noisy, 0.08, NonLocalMeans(search_radius=4, search_stride=1, patch_radius=2))
    theirs = denoise_nl_means(noisy[0].permute(1, 2, 0).numpy(), h=0.8 * 0.08, sigma=0.08, fast_mode=True,
                              patch_size=5, patch_distance=4, channel_axis=-1)
    theirs = torch.from_numpy(theirs).permute(2, 0, 1)[None]
    assert rmse(ours, clean) < 0.5 * rmse(noisy, clean)
    assert abs(rmse(ours, clean) - rmse(theirs, clean)) < 0.1 * rmse(theirs, clean)
    assert float((ours - theirs).abs().mean()) < 0.15 * 0.08


def test_strips_compute_what_the_whole_image_does():
    noisy = noisy_version(textured(70, 40), 0.05)
    whole = nonlocal_means(noisy, 0.05, NonLocalMeans(search_radius=6, search_stride=2, strip_rows=1000))
    strips = nonlocal_means(noisy, 0.05, NonLocalMeans(search_radius=6, search_stride=2, strip_rows=16))
    assert torch.allclose(strips, whole, atol=1e-12)


def test_flat_images_and_a_zero_noise_level_pass_through():
    flat = torch.full((1, 3, 20, 30), 0.4, dtype=torch.float64)
    assert torch.allclose(nonlocal_means(flat, 0.05), flat, atol=1e-12)
    image = textured()
    assert nonlocal_means(image, 0.0) is image


def test_a_search_wider_than_the_image_works():
    noisy = noisy_version(textured(9, 7), 0.05)
    out = nonlocal_means(noisy, 0.05)  # radius 21 on a 9 x 7 image: reflected again as needed
    assert out.shape == noisy.shape and torch.isfinite(out).all()
    one_row = torch.rand(1, 3, 1, 12, dtype=torch.float64)
    assert nonlocal_means(one_row, 0.05).shape == one_row.shape


def test_the_blend_gives_back_texture_a_smooth_estimate_lost():
    clean = textured()
    noisy = noisy_version(clean, 0.05)
    smoothed = blurred(noisy, 1.5)  # an estimate with the noise and the stripes' contrast gone
    blended = blend_nonlocal(noisy, smoothed, 0.3)
    assert rmse(blended, clean) < 0.9 * rmse(smoothed, clean)
    assert blend_nonlocal(noisy, smoothed, 0.0) is smoothed
    # An image a denoiser left as it was has no noise level to read: it is left as it was.
    assert torch.equal(blend_nonlocal(noisy, noisy.clone(), 0.3), noisy)


def test_the_noise_level_of_each_channel_is_read_from_what_the_estimate_took_out():
    clean = textured(96, 96)
    noisy = clean + torch.tensor([0.02, 0.05, 0.1], dtype=clean.dtype).view(1, 3, 1, 1) * (noisy_version(clean, 1.0) - clean)
    assert residual_sigmas(noisy[0], clean[0]) == pytest.approx([0.02, 0.05, 0.1], rel=0.05)


def test_patches_are_compared_in_units_of_each_channels_noise():
    # Scaling a channel together with its noise level changes nothing in the weights, so the
    # estimate scales with it: each channel is compared in units of its own noise.
    noisy = noisy_version(textured(), 0.05)
    gains = torch.tensor([1.0, 4.0, 0.5], dtype=noisy.dtype).view(1, 3, 1, 1)
    options = NonLocalMeans(search_radius=6, search_stride=2)
    plain = nonlocal_means(noisy, [0.05, 0.05, 0.05], options)
    scaled = nonlocal_means(noisy * gains, [0.05, 0.2, 0.025], options)
    assert torch.allclose(scaled, plain * gains, atol=1e-10)
    assert torch.allclose(nonlocal_means(noisy, 0.05, options), plain, atol=1e-12)


def test_each_image_of_a_batch_gets_its_own_noise_level():
    clean = textured()
    noisy = torch.cat([noisy_version(clean, 0.02, seed=1), noisy_version(clean, 0.1, seed=2)])
    estimate = blurred(noisy, 1.0)
    batch = blend_nonlocal(noisy, estimate, 0.3)
    for i in range(2):
        assert torch.allclose(batch[i:i + 1], blend_nonlocal(noisy[i:i + 1], estimate[i:i + 1], 0.3), atol=1e-12)


@pytest.mark.parametrize("bad, key", [
    ({"search_radius": 0}, "search_radius"), ({"search_stride": 1.5}, "search_stride"),
    ({"patch_radius": -1}, "patch_radius"), ({"h_factor": 0}, "h_factor"), ({"strip_rows": True}, "strip_rows"),
])
def test_bad_options_are_named(bad, key):
    with pytest.raises(ValueError, match=key):
        NonLocalMeans(**bad)


def test_bad_inputs_are_named():
    image = torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="weight=1.5"):
        blend_nonlocal(image, image, 1.5)
    with pytest.raises(ValueError, match="same"):
        blend_nonlocal(image, image[..., :4], 0.3)
    with pytest.raises(ValueError, match="B, C, H, W"):
        nonlocal_means(image[0], 0.1)
    with pytest.raises(ValueError, match="2 noise levels for 3 channels"):
        nonlocal_means(image, [0.1, 0.2])


def test_float32_runs_in_float32():
    noisy = noisy_version(textured(), 0.05).float()
    out = blend_nonlocal(noisy, blurred(noisy, 1.0), 0.3)
    assert out.dtype == torch.float32
    assert np.isfinite(out.numpy()).all()
