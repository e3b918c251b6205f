"""Chroma smoothing (denoise/ops/chroma.py): what it must remove, and what it must leave alone."""

import pytest
import torch

from denoise.ops.chroma import OPPONENT, ChromaSmoothing, guided_filter, smooth_chroma
from denoise.ops.detail import box_mean, gaussian_blur


def opponent(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", OPPONENT.to(image.dtype), image)


def colour_blotches(shape, std: float, seed: int) -> torch.Tensor:
    """Low-frequency noise in the two chroma axes only (none in the luma), as RGB."""
    white = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    planes = gaussian_blur(white.reshape(-1, 1, *shape[-2:]), 3.0).reshape(shape)
    planes = std * planes / planes.std()
    planes[:, 0] = 0  # the luma axis
    return torch.einsum("oc,bohw->bchw", OPPONENT, planes)


def test_the_colour_transform_is_orthonormal():
    assert torch.allclose(OPPONENT @ OPPONENT.T, torch.eye(3, dtype=torch.float64), atol=1e-15)


@pytest.mark.parametrize("colour", [(0.5, 0.5, 0.5), (0.8, 0.2, 0.1), (0.05, 0.6, 0.9)])
def test_a_flat_colour_and_a_grey_ramp_are_left_as_they_are(colour):
    flat = torch.tensor(colour, dtype=torch.float64).view(1, 3, 1, 1).expand(2, 3, 40, 50).clone()
    assert torch.allclose(smooth_chroma(flat), flat, atol=1e-12)
    ramp = torch.linspace(0, 1, 50, dtype=torch.float64).expand(1, 3, 40, 50).clone()  # grey: R = G = B
    assert torch.allclose(smooth_chroma(ramp), ramp, atol=1e-12)


def test_colour_blotches_are_removed_and_the_luma_is_untouched():
    clean = torch.tensor([0.35, 0.3, 0.25], dtype=torch.float64).view(1, 3, 1, 1).expand(1, 3, 96, 96)
    blotched = clean + colour_blotches((1, 3, 96, 96), 0.03, seed=1)
    smoothed = smooth_chroma(blotched)
    assert torch.allclose(opponent(smoothed)[:, 0], opponent(blotched)[:, 0], atol=1e-12)
    before = (blotched - clean).square().mean()
    after = (smoothed - clean).square().mean()
    # Blotches 3 pixels wide against 17x17 windows: about a fifth of their energy is left.
    assert after < 0.25 * before


def test_a_colour_edge_that_follows_a_brightness_edge_stays_sharp():
    image = torch.empty(1, 3, 48, 48, dtype=torch.float64)
    image[..., :24] = torch.tensor([0.15, 0.1, 0.3], dtype=torch.float64).view(1, 3, 1, 1)  # dark blue
    image[..., 24:] = torch.tensor([0.9, 0.6, 0.2], dtype=torch.float64).view(1, 3, 1, 1)  # bright orange
    # Within one 8-bit level everywhere (eps lets the fit give a little); blurring the chroma in
    # the same window would move the colours near the edge by a quarter of the range.
    assert (smooth_chroma(image) - image).abs().max() < 1 / 255
    chroma = opponent(image)[:, 1:].reshape(2, 1, 48, 48)
    assert (box_mean(box_mean(chroma, 17), 17) - chroma).abs().max() > 0.1


def test_other_channel_counts_are_returned_as_given_and_bad_options_are_named():
    for channels in (1, 4):
        image = torch.rand(1, channels, 20, 20)
        assert smooth_chroma(image) is image
    with pytest.raises(ValueError, match="radius=0"):
        ChromaSmoothing(radius=0)
    with pytest.raises(ValueError, match="eps=0"):
        ChromaSmoothing(eps=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        smooth_chroma(torch.rand(3, 20, 20))


def test_the_guided_filter_is_the_local_affine_fit_in_every_window():
    # A source that is an affine function of the guide is reproduced exactly (up to eps).
    guide = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    source = 0.4 * guide - 0.1
    assert torch.allclose(guided_filter(source, guide, radius=3, eps=1e-12), source, atol=1e-8)
    # With a huge eps the slope vanishes: the filter is the box mean of the source.
    noise = torch.rand(1, 1, 30, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    wide = guided_filter(noise, guide, radius=2, eps=1e12)
    assert torch.allclose(wide, box_mean(box_mean(noise, 5), 5), atol=1e-9)
