"""Every noise model has its documented statistics and is reproducible under a seeded generator."""

import math

import pytest
import torch

from denoise.data.noise import (
    CorrelatedGaussianNoise,
    DeadlineNoise,
    GaussianNoise,
    ImpulseNoise,
    MixtureNoise,
    NonIIDGaussianNoise,
    NoNoise,
    PoissonGaussianNoise,
    StripeNoise,
)
from denoise.errors import ConfigError

ALL = [
    NoNoise(), GaussianNoise(25.0), GaussianNoise([10.0, 50.0]), CorrelatedGaussianNoise(25.0),
    PoissonGaussianNoise(30.0, 5.0), NonIIDGaussianNoise(), StripeNoise(), DeadlineNoise(), ImpulseNoise(),
    MixtureNoise(),
]


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("noise", ALL, ids=lambda n: type(n).__name__)
def test_seeded_noise_is_reproducible_and_leaves_the_input_alone(noise):
    image = torch.rand(9, 24, 32)
    before = image.clone()
    first, second = noise(image, seeded(3)), noise(image, seeded(3))
    assert torch.equal(first, second)
    assert torch.equal(image, before)
    assert first.shape == image.shape and first.dtype == image.dtype
    if not isinstance(noise, NoNoise):
        assert not torch.equal(noise(image, seeded(4)), first)


def test_gaussian_mean_and_variance():
    image = torch.full((3, 128, 128), 0.5)
    residual = GaussianNoise(25.0)(image, seeded()) - image
    assert abs(residual.mean().item()) < 3e-3
    assert residual.std().item() == pytest.approx(25 / 255, rel=0.02)


def test_gaussian_range_draws_sigma_per_image_within_the_range():
    noise, image = GaussianNoise([10.0, 50.0]), torch.zeros(1, 64, 64)
    sigmas = [noise(image, seeded(s)).std().item() * 255 for s in range(20)]
    assert min(sigmas) > 9.0 and max(sigmas) < 51.0 and max(sigmas) - min(sigmas) > 10


def test_poisson_gaussian_variance_follows_the_signal():
    peak, sigma = 20.0, 5.0
    noise = PoissonGaussianNoise(peak, sigma)
    for level in (0.1, 0.8):
        image = torch.full((1, 256, 256), level)
        residual = noise(image, seeded()) - image
        assert abs(residual.mean().item()) < 4e-3
        assert residual.var().item() == pytest.approx(level / peak + (sigma / 255) ** 2, rel=0.05)


def test_noniid_gives_each_band_one_of_the_sigmas():
    sigmas = (10.0, 30.0, 50.0, 70.0)
    image = torch.zeros(40, 96, 96)
    stds = (NonIIDGaussianNoise(sigmas)(image, seeded()) * 255).flatten(1).std(dim=1)
    nearest = torch.tensor(sigmas)[(stds[:, None] - torch.tensor(sigmas)).abs().argmin(dim=1)]
    assert torch.allclose(stds, nearest, rtol=0.05)
    assert len(set(nearest.tolist())) > 1


def _hit_bands(noisy, image):
    return [b for b in range(image.shape[0]) if not torch.equal(noisy[b], image[b])]


def test_stripes_hit_a_third_of_the_bands_on_5_to_15_percent_of_columns_constant_along_them():
    bands, height, width = 30, 40, 100
    image = torch.rand(bands, height, width)
    noisy = StripeNoise(sigmas=None)(image, seeded())
    hit = _hit_bands(noisy, image)
    assert len(hit) == 10
    for b in hit:
        offset = noisy[b] - image[b]
        columns = (offset.abs() > 0).any(dim=0)
        assert 5 <= int(columns.sum()) <= 15
        assert torch.allclose(offset[:, columns], offset[:1, columns].expand(height, -1), atol=1e-6)
        assert offset.abs().max() <= 0.25 + 1e-6


def test_deadlines_zero_whole_columns_of_a_third_of_the_bands():
    image = torch.rand(30, 40, 100) + 0.1
    noisy = DeadlineNoise(sigmas=None)(image, seeded())
    hit = _hit_bands(noisy, image)
    assert len(hit) == 10
    for b in hit:
        dead = (noisy[b] == 0).all(dim=0)
        assert 5 <= int(dead.sum()) <= 15
        assert torch.equal(noisy[b][:, ~dead], image[b][:, ~dead])


def test_impulse_sets_the_drawn_ratio_of_pixels_to_salt_or_pepper():
    image = torch.full((30, 100, 100), 0.5)
    noisy = ImpulseNoise(amounts=[0.3], sigmas=None)(image, seeded())
    hit = _hit_bands(noisy, image)
    assert len(hit) == 10
    for b in hit:
        salt, pepper = (noisy[b] == 1).float().mean().item(), (noisy[b] == 0).float().mean().item()
        assert salt + pepper == pytest.approx(0.3, abs=0.02)
        assert salt == pytest.approx(pepper, abs=0.03)


def test_structured_noise_comes_on_top_of_noniid_gaussian_by_default():
    image = torch.full((12, 32, 32), 0.5)
    noisy = StripeNoise()(image, seeded())
    assert len(_hit_bands(noisy, image)) == 12  # every band has Gaussian noise


def test_mixture_puts_stripes_deadlines_and_impulses_on_disjoint_bands():
    image = torch.full((30, 60, 90), 0.5)
    noisy = MixtureNoise(sigmas=None, impulse_amounts=[0.5])(image, seeded())
    dead = [b for b in range(30) if ((noisy[b] == 0).all(dim=0)).any()]
    impulse = [b for b in range(30) if (noisy[b] == 1).float().mean() > 0.2]
    striped = [b for b in _hit_bands(noisy, image) if b not in dead and b not in impulse]
    assert len(dead) == len(impulse) == len(striped) == 10


def test_band_counts_use_the_floor_of_the_fraction():
    image = torch.rand(31, 20, 40) + 0.1
    assert len(_hit_bands(DeadlineNoise(sigmas=None)(image, seeded()), image)) == math.floor(31 / 3)


@pytest.mark.parametrize(
    "build",
    [lambda: GaussianNoise(-1.0), lambda: GaussianNoise([5.0, 1.0]), lambda: PoissonGaussianNoise(0.0),
     lambda: NonIIDGaussianNoise([]), lambda: StripeNoise(band_fraction=1.5), lambda: ImpulseNoise(amounts=[2.0]),
     lambda: MixtureNoise(band_fraction=0.5), lambda: DeadlineNoise(column_fraction=[0.2, 0.1])],
)
def test_bad_noise_settings_raise_config_errors(build):
    with pytest.raises(ConfigError, match="noise."):
        build()


def test_correlated_noise_keeps_sigma_and_correlates_neighbours_closer_than_the_kernel():
    image = torch.full((1, 256, 256), 0.5)
    residual = (CorrelatedGaussianNoise(25.0, kernel_size=3, clip=False)(image, seeded()) - image)[0]
    assert residual.std().item() == pytest.approx(25 / 255, rel=0.03)

    def correlation(shift):
        a, b = residual[:, :-shift].flatten(), residual[:, shift:].flatten()
        return torch.corrcoef(torch.stack([a, b]))[0, 1].item()

    assert correlation(1) == pytest.approx(6 / 9, abs=0.03)  # 3x3 box: 6 of 9 taps shared
    assert abs(correlation(3)) < 0.03  # PD with factor >= 3 sees independent noise


@pytest.mark.parametrize(
    "kernel_size,expected", [(2, {1: 1 / 2, 2: 0.0}), (3, {1: 2 / 3, 2: 1 / 3, 3: 0.0})]
)
def test_correlated_noise_is_independent_from_kernel_size_on(kernel_size, expected):
    """Pixels k apart share no white-noise sample: PD 2 decorrelates the demo's 2x2 noise,
    while a 3x3 box still correlates pixels 2 apart (the PD 2 sub-image neighbours) by 1/3."""
    image = torch.full((1, 301, 257), 0.5)
    noisy = CorrelatedGaussianNoise(25.0, kernel_size=kernel_size, clip=False)(image, seeded())
    assert noisy.shape == image.shape
    residual = (noisy - image)[0]
    for shift, correlation in expected.items():
        a, b = residual[:, :-shift].flatten(), residual[:, shift:].flatten()
        assert torch.corrcoef(torch.stack([a, b]))[0, 1].item() == pytest.approx(correlation, abs=0.03)
