"""Pure tensor functions: phase split, PD, padding, R3."""

import pytest
import torch

from denoise.ops import (
    InferenceSettings,
    blind_spot_denoise,
    first_sub_image,
    pad_to_multiple,
    pd_down,
    pd_up,
    phase_merge,
    phase_pixel_shuffle,
    phase_pixel_unshuffle,
    phase_split,
    r3_refine,
)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_phase_split_merge_is_exact_inverse(stride):
    x = torch.randn(2, 3, 6 * stride, 4 * stride)
    subs = phase_split(x, stride)
    assert subs.shape == (2 * stride * stride, 3, 6, 4)
    assert torch.equal(phase_merge(subs, stride), x)


def test_phase_split_order_is_b_s1_s2():
    x = torch.randn(2, 1, 4, 6)
    subs = phase_split(x, 2)
    for b in range(2):
        for s1 in range(2):
            for s2 in range(2):
                assert torch.equal(subs[b * 4 + s1 * 2 + s2], x[b, :, s1::2, s2::2])


def test_phase_split_rejects_non_multiple():
    with pytest.raises(ValueError, match="not a multiple of the stride 2"):
        phase_split(torch.zeros(1, 1, 5, 4), 2)


def test_phase_pixel_unshuffle_keeps_every_position_on_one_phase():
    h = w = 8
    phase = (torch.arange(h)[:, None] % 2) * 2 + (torch.arange(w)[None, :] % 2)  # phase id per pixel
    x = phase[None, None].float().expand(1, 3, h, w)
    y = phase_pixel_unshuffle(x, 2, 2)
    assert y.shape == (1, 12, 4, 4)
    low_phase = (torch.arange(4)[:, None] % 2) * 2 + (torch.arange(4)[None, :] % 2)
    assert torch.equal(y, low_phase[None, None].float().expand_as(y))
    assert torch.equal(phase_pixel_shuffle(y, 2, 2), x)


@pytest.mark.parametrize("layout,pad", [("batch", 0), ("mosaic", 0), ("mosaic", 2)])
@pytest.mark.parametrize("size", [(20, 30), (23, 17)])
def test_pd_round_trip_any_size(layout, pad, size):
    x = torch.randn(2, 3, *size)
    down = pd_down(x, 5, layout, pad)
    assert torch.equal(pd_up(down, 5, size, layout, pad), x)


def test_pd_batch_layout_is_the_phase_split_and_first_is_sub_image_zero():
    x = torch.randn(2, 3, 10, 10)
    down = pd_down(x, 5, "batch")
    assert torch.equal(down, phase_split(x, 5))
    first = first_sub_image(down, 5)
    assert first.shape == (2, 3, 2, 2)
    assert torch.equal(first, x[:, :, ::5, ::5])


def test_pd_mosaic_tiles_padded_sub_images():
    x = torch.randn(1, 2, 8, 8)
    mosaic = pd_down(x, 2, "mosaic", pad=2)
    assert mosaic.shape == (1, 2, 2 * (4 + 4), 2 * (4 + 4))
    tile = mosaic[..., 8:16, 0:8]  # sub-image (1, 0)
    assert torch.equal(tile[..., 2:-2, 2:-2], x[..., 1::2, 0::2])
    assert tile[..., :2, :].abs().sum() == 0


def test_pd_non_divisible_sizes_are_reflect_padded_not_rejected():
    x = torch.arange(7.0).view(1, 1, 1, 7).expand(1, 1, 7, 7)
    down = pd_down(x, 2, "batch")
    assert down.shape == (4, 1, 4, 4)
    assert down[0, 0, 0, -1] == 6.0  # sub-image (0, 0): columns 0, 2, 4, 6
    assert down[1, 0, 0, -1] == 5.0  # sub-image (0, 1): columns 1, 3, 5 and 7 = reflected 5


def test_pad_to_multiple_falls_back_to_zeros_when_too_small():
    x = torch.ones(1, 1, 3, 3)
    padded = pad_to_multiple(x, 32)
    assert padded.shape == (1, 1, 32, 32)
    assert padded[..., 3:, :].abs().sum() == 0


def _toy_net(x):
    return 0.5 * x + 0.1


def test_r3_is_seeded_and_reproducible():
    noisy, first = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    a = r3_refine(_toy_net, noisy, first, passes=4, p=0.3, seed=7)
    b = r3_refine(_toy_net, noisy, first, passes=4, p=0.3, seed=7)
    c = r3_refine(_toy_net, noisy, first, passes=4, p=0.3, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_r3_extremes():
    noisy, first = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    assert torch.allclose(r3_refine(_toy_net, noisy, first, passes=3, p=0.0), _toy_net(first))
    assert torch.allclose(r3_refine(_toy_net, noisy, first, passes=3, p=1.0), _toy_net(noisy))


def test_r3_replaces_the_requested_fraction():
    noisy, first = torch.ones(1, 3, 64, 64), torch.zeros(1, 3, 64, 64)
    fraction = r3_refine(lambda x: x, noisy, first, passes=8, p=0.16, seed=0).mean().item()
    assert abs(fraction - 0.16) < 0.01


def test_blind_spot_denoise_runs_pd_and_r3_on_any_size():
    noisy = torch.rand(1, 3, 19, 23)
    out = blind_spot_denoise(_toy_net, noisy, InferenceSettings(pd_factor=2, r3_passes=2))
    assert out.shape == noisy.shape
    identity = blind_spot_denoise(lambda x: x, noisy, InferenceSettings(pd_factor=2, r3_passes=0))
    assert torch.equal(identity, noisy)
