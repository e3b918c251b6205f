"""Collaborative Wiener filtering on edges (denoise/ops/collaborative_wiener.py)."""

import pytest
import torch
from einops import rearrange

from denoise.metrics.appearance import appearance_metrics
from denoise.ops.chroma import OPPONENT
from denoise.ops.collaborative_wiener import (
    CollaborativeWiener,
    collaborative_wiener,
    dct_matrix,
    edge_gate,
    patch_noise_variance,
    sharpen_edges,
)
from denoise.ops.detail import gaussian_blur

SMALL = CollaborativeWiener(search_radius=4, group_size=8)


def shapes(height: int = 48, width: int = 56) -> torch.Tensor:
    """A (1, 3, H, W) image of flat coloured regions with sharp edges: a disc, a bar and a step."""
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    disc = ((y - height / 2) ** 2 + (x - width / 3) ** 2 < (height / 4) ** 2).double()
    bar = ((x > 0.7 * width) & (x < 0.8 * width)).double()
    step = (y > 0.8 * height).double()
    return torch.stack([0.2 + 0.5 * disc + 0.2 * step, 0.3 + 0.4 * bar + 0.3 * disc, 0.4 + 0.3 * step - 0.2 * bar])[None]


def noisy_version(clean: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    return clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed), dtype=clean.dtype)


def blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    planes = gaussian_blur(rearrange(image, "b c h w -> (b c) 1 h w"), sigma)
    return rearrange(planes, "(b c) 1 h w -> b c h w", b=image.shape[0])


def appearance(output: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    return appearance_metrics(output[0].permute(1, 2, 0).numpy(), clean[0].permute(1, 2, 0).numpy())


def opponent_chroma(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", OPPONENT.to(image), image)[:, 1:]


def test_the_dct_is_orthonormal():
    for size in (1, 8, 16):
        basis = dct_matrix(size, torch.float64, torch.device("cpu"))
        assert torch.allclose(basis @ basis.T, torch.eye(size, dtype=torch.float64), atol=1e-12)


def test_the_noise_variance_of_every_coefficient_is_read_from_the_residual():
    # White noise has the same variance in every orthonormal DCT coefficient; a blur of it moves the
    # variance to the low frequencies, which is what correlated camera noise looks like.
    generator = torch.Generator().manual_seed(1)
    pilot = torch.rand(1, 512, 512, generator=generator, dtype=torch.float64)
    white = 0.05 * torch.randn(1, 512, 512, generator=generator, dtype=torch.float64)
    variance = patch_noise_variance(pilot + white, pilot, 8)
    assert variance.shape == (1, 8, 8)
    # 4,096 patches: each coefficient's estimate is within about 15 % (3 standard errors).
    assert torch.allclose(variance, torch.full_like(variance, 0.05**2), rtol=0.15)
    assert abs(float(variance.mean()) / 0.05**2 - 1) < 0.03
    correlated = blurred(white[None], 1.0)[0]
    variance = patch_noise_variance(pilot + correlated, pilot, 8)
    assert variance[0, 0, 0] > 10 * variance[0, 7, 7]


def test_it_sharpens_a_soft_estimate_and_lowers_its_error_on_the_edges():
    clean = shapes(64, 72)
    noisy = noisy_version(clean, 0.05)
    soft = blurred(clean, 1.2)  # a denoiser that took the noise and some of the edges
    sharpened = sharpen_edges(noisy, soft, SMALL)
    before, after = appearance(soft, clean), appearance(sharpened, clean)
    assert after["edge_contrast"] > before["edge_contrast"] + 0.1
    edges = edge_gate(torch.einsum("c,bchw->bhw", OPPONENT[0].to(clean), clean)[0], SMALL) > 0.5

    def error(x):  # mean squared error on the clean photo's edges
        return float((x - clean).square().sum(1)[0][edges].mean())

    assert error(sharpened) < 0.8 * error(soft)


def test_only_the_luma_changes_and_flat_areas_are_left_as_they_were():
    clean = shapes(48, 120)
    clean[..., 56:] = clean[..., 55:56]  # the right half: flat rows, far from every edge
    noisy = noisy_version(clean, 0.05)
    soft = blurred(clean, 1.0)
    sharpened = sharpen_edges(noisy, soft, SMALL)
    assert torch.allclose(opponent_chroma(sharpened), opponent_chroma(soft), atol=1e-12)
    assert not torch.allclose(sharpened, soft, atol=1e-3)
    # Far from every edge no reference patch reaches the gate's floor: the estimate is kept there.
    gate = edge_gate(torch.einsum("c,bchw->bhw", OPPONENT[0].to(clean), soft)[0], SMALL)
    reach = torch.nn.functional.max_pool2d(gate[None, None], 2 * SMALL.patch_size + 1, stride=1,
                                           padding=SMALL.patch_size)[0, 0]
    far = reach < SMALL.gate_floor
    assert far.float().mean() > 0.3
    assert torch.allclose(sharpened[..., far], soft[..., far], atol=1e-12)


def test_ripples_that_do_not_stand_out_of_the_noise_are_no_edges():
    # A flat photo whose estimate keeps faint ripples (a tenth of the noise): the strongest tenth of
    # its gradients are ripples, which the floor keeps from being filtered into blotches.
    y, x = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    ripples = (0.4 + 0.003 * torch.sin(x / 2) * torch.cos(y / 3)).double().expand(1, 3, 48, 64).clone()
    noisy = noisy_version(ripples, 0.05)
    floored = float((sharpen_edges(noisy, ripples, SMALL) - ripples).abs().max())
    unfloored = sharpen_edges(noisy, ripples, CollaborativeWiener(search_radius=4, group_size=8, edge_floor=0.0))
    assert floored < 0.05 * float((unfloored - ripples).abs().max())
    # The strong edges of a noisy photo stand out and are still sharpened (the test above).


def test_strips_compute_what_the_whole_image_does():
    clean = shapes(90, 40)
    noisy, soft = noisy_version(clean, 0.05), blurred(clean, 1.0)
    whole = sharpen_edges(noisy, soft, CollaborativeWiener(search_radius=4, group_size=8, strip_rows=1000))
    strips = sharpen_edges(noisy, soft, CollaborativeWiener(search_radius=4, group_size=8, strip_rows=13))
    assert torch.allclose(strips, whole, atol=1e-12)


def test_an_estimate_with_nothing_taken_out_and_a_flat_image_pass_through():
    clean = shapes()
    assert torch.allclose(sharpen_edges(clean, clean, SMALL), clean, atol=1e-12)
    flat = torch.full((1, 3, 24, 24), 0.4, dtype=torch.float64)
    noisy = noisy_version(flat, 0.05)
    assert torch.allclose(sharpen_edges(noisy, flat, SMALL), flat, atol=1e-12)  # no edge: the gate is zero


def test_images_smaller_than_a_patch_and_other_channel_counts_pass_through():
    small = torch.rand(1, 3, 5, 40, dtype=torch.float64)
    assert sharpen_edges(small + 0.1, small) is small
    cube = torch.rand(1, 6, 24, 24, dtype=torch.float64)
    assert sharpen_edges(cube + 0.1, cube) is cube


def test_grey_images_and_every_image_of_a_batch_are_sharpened_on_their_own():
    clean = shapes()
    noisy, soft = noisy_version(clean, 0.05), blurred(clean, 1.0)
    grey_clean, grey_noisy, grey_soft = clean[:, :1], noisy[:, :1], soft[:, :1]
    grey = sharpen_edges(grey_noisy, grey_soft, SMALL)
    assert appearance(grey, grey_clean)["edge_contrast"] > appearance(grey_soft, grey_clean)["edge_contrast"] + 0.1
    other = noisy_version(shapes().flip(-1), 0.08, seed=3)
    batch = sharpen_edges(torch.cat([noisy, other]), torch.cat([soft, blurred(other, 1.0)]), SMALL)
    assert torch.allclose(batch[:1], sharpen_edges(noisy, soft, SMALL), atol=1e-12)
    assert torch.allclose(batch[1:], sharpen_edges(other, blurred(other, 1.0), SMALL), atol=1e-12)


def test_a_wiener_estimate_uses_the_pilots_structure_and_drops_the_rest():
    # Where the pilot holds a coefficient far above the noise the noisy one is kept; where it holds
    # none, the coefficient is dropped: with an exact pilot, the estimate is the pilot's average over
    # the patches covering each pixel, the pilot itself.
    clean = shapes()[0, :1]
    noisy = noisy_version(clean, 0.02)
    gate = torch.ones_like(clean[0])
    estimate = collaborative_wiener(noisy, clean, gate, SMALL)
    assert float((estimate - clean).square().mean()) < 0.25 * float((noisy - clean).square().mean())


@pytest.mark.parametrize(
    ("option", "value"),
    [("patch_size", 1), ("group_size", 0), ("search_radius", -1), ("search_stride", 0), ("reference_stride", 1.5),
     ("edge_quantile", 1.0), ("edge_floor", -1.0), ("gate_blur", -1.0), ("gate_floor", 1.0), ("noise_margin", 0.0), ("window_beta", -1.0),
     ("strip_rows", 0), ("group_size", True)],
)
def test_bad_options_are_named(option, value):
    with pytest.raises(ValueError, match=option):
        CollaborativeWiener(**{option: value})


def test_mismatched_images_are_refused():
    with pytest.raises(ValueError, match="same"):
        sharpen_edges(torch.rand(1, 3, 20, 20), torch.rand(1, 3, 20, 21))
    with pytest.raises(ValueError, match="same"):
        sharpen_edges(torch.rand(3, 20, 20), torch.rand(3, 20, 20))
