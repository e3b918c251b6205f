"""The hyperspectral blind-spot network reads the other bands of the centre pixel, never the one it predicts.

In float64 with random weights: the gradient of output (p, b) with respect to input (p, b) is
exactly zero for every band b, in train and eval mode, at a centre, border and corner pixel;
output (p, b) does read other bands of p (the spectral heads work) and the neighbours of p (the
spatial network works); removing the mask breaks the test; moving x(p, b) leaves output (p, b)
where it was.
"""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from denoise.errors import ConfigError
from denoise.nets import DBSN, TBSN, SpectralBlindSpotNet, UNet
from denoise.nets.base import Network
from denoise.nets.blindness import band_jacobian_at, probe_pixels
from denoise.nets.spectral_bsn import band_groups
from tests.conftest import compose_net

BANDS = 7  # odd, so the groups differ in size


def small_tbsn(bands: int = BANDS) -> TBSN:
    return TBSN(bands, dim=8, num_blocks=[1, 1, 1], num_refinement_blocks=1, channel_heads=[1, 1, 1],
                window_heads=[1, 1, 1])


def small_net(groups: int = 2, spatial: str = "tbsn") -> SpectralBlindSpotNet:
    if spatial == "tbsn":
        body = small_tbsn()
    else:
        body = DBSN(BANDS, channels=8, num_blocks=2)
    return SpectralBlindSpotNet(BANDS, body, groups=groups, hidden=16)


def assert_band_blind(net, size, train: bool, seed: int = 0) -> None:
    torch.manual_seed(seed)
    net = net.double().train(train)
    h, w = size
    x = torch.rand(1, net.in_channels, h, w, dtype=torch.float64)
    for where, (row, col) in probe_pixels(h, w).items():
        jacobian = band_jacobian_at(net, x, (row, col))  # (out band, in band, H, W)
        at_p = jacobian[:, :, row, col]
        leaks = at_p.diagonal().abs()
        assert leaks.max().item() == 0.0, f"leak at the {where} pixel {(row, col)}, band {leaks.argmax().item()}"
        assert (at_p.abs() > 0).any(), f"output at the {where} pixel reads no other band of it"
        col_n = col - 1 if col > 0 else col + 1
        assert jacobian[:, :, row, col_n].abs().max().item() > 0, f"no gradient next to the {where} pixel"


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("spatial", ["tbsn", "dbsn"])
def test_exactly_blind_to_the_predicted_band(spatial, train):
    assert_band_blind(small_net(spatial=spatial), (36, 30), train)


@pytest.mark.parametrize("groups", [3, BANDS])
def test_blind_for_any_group_count(groups):
    assert_band_blind(small_net(groups), (24, 20), train=False)


def test_reads_every_band_outside_the_group():
    torch.manual_seed(1)
    net = small_net(groups=2).double().eval()
    x = torch.rand(1, BANDS, 24, 24, dtype=torch.float64)
    at_p = band_jacobian_at(net, x, (12, 12))[:, :, 12, 12]
    for group in band_groups(BANDS, 2):
        others = torch.tensor([b for b in range(BANDS) if b not in group.tolist()])
        assert (at_p[group][:, group] == 0).all()  # the whole group is hidden, not only the band
        assert (at_p[group][:, others].abs() > 0).all()


def test_the_test_sees_a_removed_mask():
    net = small_net()
    for head in net.heads:
        head.visible.fill_(1.0)
    with pytest.raises(AssertionError, match="leak"):
        assert_band_blind(net, (24, 20), train=False)


def test_moving_the_predicted_band_does_not_move_its_output():
    torch.manual_seed(2)
    net = small_net().double().eval()
    x = torch.rand(1, BANDS, 32, 32, dtype=torch.float64)
    row, col = 16, 15
    with torch.no_grad():
        before = net(x)[0, :, row, col]
        for band in range(BANDS):
            moved = x.clone()
            moved[0, band, row, col] += 10.0
            after = net(moved)[0, :, row, col]
            assert after[band] == before[band]
            assert (after - before).abs().max() > 0  # the other bands' outputs do read it


def test_the_config_builds_the_network_for_the_data_bands():
    net = instantiate(compose_net("hsi_spectral_bsn"), in_channels=12)
    assert isinstance(net, SpectralBlindSpotNet) and net.spatial.in_channels == 12
    assert net(torch.rand(2, 12, 19, 23)).shape == (2, 12, 19, 23)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="model.net.groups=1"):
        SpectralBlindSpotNet(BANDS, small_net().spatial, groups=1)
    with pytest.raises(ConfigError, match="model.net.spatial.in_channels=7 differs"):
        SpectralBlindSpotNet(8, small_net().spatial)
    with pytest.raises(ConfigError, match="not a pixel-blind network"):
        SpectralBlindSpotNet(3, UNet(3))


def low_rank_cube(bands: int = 12, size: int = 32, sigma: float = 0.1, seed: int = 0):
    """A cube whose spectra mix three endmembers (as real scenes do), plus i.i.d. Gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    spectra = torch.rand(3, bands, generator=generator)
    abundances = torch.rand(1, 3, size, size, generator=generator).softmax(dim=1)
    clean = torch.einsum("kb,nkhw->nbhw", spectra, abundances)
    return clean, clean + sigma * torch.randn(clean.shape, generator=generator)


def test_linear_start_begins_at_the_spectral_least_squares_predictor():
    clean, noisy = low_rank_cube()
    net = SpectralBlindSpotNet(12, small_tbsn(12), hidden=16)
    assert net.start_from_data(noisy)
    with torch.no_grad():
        out = net(noisy)
        linear = torch.cat([head.linear(noisy * head.visible) for head in net.heads], dim=1)[:, net.band_order]
    # The untrained paths start at zero: the output is the linear predictor alone ...
    torch.testing.assert_close(out, linear, rtol=0, atol=1e-6)
    # ... which removes most of the noise (the other group's 6 bands see the same 3 endmembers) ...
    assert ((out - clean) ** 2).mean() < 0.25 * ((noisy - clean) ** 2).mean()
    # ... and is the least-squares solution: its residual is orthogonal to every input it reads.
    for head in net.heads:
        residual = (noisy - out)[:, head.group].flatten(2)
        shown = noisy[:, head.visible.flatten() > 0].flatten(2)
        assert torch.einsum("ngp,nvp->gv", residual, shown).abs().max() < 1e-2 * residual.numel() ** 0.5


@pytest.mark.parametrize("spatial", ["tbsn", "dbsn"])
def test_the_linear_start_zeroes_the_spatial_networks_output_layer(spatial):
    _, noisy = low_rank_cube(bands=BANDS, size=24)
    net = small_net(spatial=spatial)
    net.start_from_data(noisy)
    with torch.no_grad():
        assert net.spatial(noisy).abs().max() == 0  # the last layer of its own output, whatever the network


def test_after_the_linear_start_and_some_steps_the_network_is_still_exactly_blind():
    _, noisy = low_rank_cube(bands=BANDS, size=24)
    net = small_net()
    net.start_from_data(noisy)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):  # the zeroed layers move at the first step, the layers behind them at the next
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(net(noisy), noisy).backward()
        optimizer.step()
    assert net.spatial.output_layer().weight.abs().max() > 0
    assert_band_blind(net, (24, 20), train=True)


def test_without_linear_start_the_network_is_left_as_built():
    _, noisy = low_rank_cube(bands=BANDS, size=24)
    net = SpectralBlindSpotNet(BANDS, small_net().spatial, hidden=16, linear_start=False)
    before = {name: value.clone() for name, value in net.state_dict().items()}
    assert not net.start_from_data(noisy)
    assert all(torch.equal(before[name], value) for name, value in net.state_dict().items())


def test_linear_start_inside_a_bf16_step_solves_in_float64():
    _, noisy = low_rank_cube()
    reference, under_bf16 = (SpectralBlindSpotNet(12, small_tbsn(12), hidden=16) for _ in range(2))
    reference.start_from_data(noisy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_bf16.start_from_data(noisy)
    for ours, theirs in zip(reference.heads, under_bf16.heads):
        torch.testing.assert_close(ours.linear.weight, theirs.linear.weight, rtol=0, atol=1e-6)


def test_linear_start_needs_a_spatial_network_that_names_its_output_layer():
    class Unnamed(TBSN):
        output_layer = Network.output_layer

    with pytest.raises(ConfigError, match=r"^model.net.linear_start=true: Unnamed names no output layer"):
        SpectralBlindSpotNet(BANDS, Unnamed(BANDS, dim=8, num_blocks=[1, 1, 1]), hidden=16)
    SpectralBlindSpotNet(BANDS, Unnamed(BANDS, dim=8, num_blocks=[1, 1, 1]), hidden=16, linear_start=False)
