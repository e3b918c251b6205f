"""The heart of the product: every blind-spot network is exactly blind.

In float64 with random weights, the gradient of output pixel p (all channels) with respect to
every channel of input pixel p is exactly zero, in train and eval mode, at a centre, border
and corner pixel; the neighbours' gradients are non-zero, so the test can fail.
"""


import pytest
import torch
from hydra.utils import instantiate

from denoise.nets import TBSN
from denoise.nets.blindness import input_gradients_at, probe_pixels
from denoise.ops import pd_down, pd_up
from tests.conftest import CONFIGS, compose_net

NET_CONFIGS = sorted(p.stem for p in (CONFIGS / "model" / "net").glob("*.yaml"))
PAPER_SIZED = {"tbsn", "dbsn"}  # heavy: one mode per run keeps the suite fast, both modes are run


def neighbour(pixel, height, width):
    row, col = pixel
    return (row, col - 1) if col > 0 else (row, col + 1)


def assert_blind(net, size, train: bool, seed: int = 0):
    if net.blindness == "pixel_band":
        from tests.test_spectral_bsn import assert_band_blind

        return assert_band_blind(net, size, train, seed)
    assert net.blindness == "pixel", f"{type(net).__name__} declares blindness={net.blindness!r}"
    torch.manual_seed(seed)
    net = net.double().train(train)
    h, w = size
    x = torch.rand(1, net.in_channels, h, w, dtype=torch.float64)
    pixels = list(probe_pixels(h, w).items())
    grads = input_gradients_at(net, x, [p for _, p in pixels])
    for (where, (row, col)), grad in zip(pixels, grads):
        assert grad[:, row, col].abs().max().item() == 0.0, f"leak at the {where} pixel {(row, col)}"
        n_row, n_col = neighbour((row, col), h, w)
        assert grad[:, n_row, n_col].abs().max().item() > 0, f"no gradient next to the {where} pixel"


def test_every_net_config_is_listed():
    assert {"tbsn", "tbsn_small", "dbsn", "dbsn_small"} <= set(NET_CONFIGS)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", NET_CONFIGS)
def test_net_config_is_exactly_blind(name, train):
    net = instantiate(compose_net(name))
    if net.blindness == "pixel_band":  # one backward pass per band: test the config on 8 bands
        net = instantiate(compose_net(name), in_channels=8)
    assert_blind(net, (64, 64), train)


@pytest.mark.parametrize("name", ["tbsn_small", "dbsn_small"])
def test_literal_form_is_exactly_blind(name):
    net = instantiate(compose_net(name), form="literal")
    assert_blind(net, (64, 64), train=True)


@pytest.mark.parametrize("name", ["tbsn_small", "dbsn_small"])
def test_blind_with_internal_padding_of_odd_sizes(name):
    net = instantiate(compose_net(name))
    assert_blind(net, (45, 38), train=False)


def test_literal_dbsn_pads_nothing_and_is_blind_at_odd_sizes():
    """The official DBSN's border treatment: every conv zero-pads its input, no size multiple."""
    net = instantiate(compose_net("dbsn_small"), form="literal")
    assert net.size_multiple == 1
    for train in (True, False):
        assert_blind(net, (45, 38), train=train)


@pytest.mark.parametrize("layout,pad,factor", [("batch", 0, 2), ("batch", 0, 5), ("mosaic", 2, 2)])
def test_whole_pipeline_pd_net_pd_up_is_blind(layout, pad, factor):
    net = instantiate(compose_net("tbsn_small")).double()
    size = (32 * factor, 32 * factor) if layout == "batch" else (64, 64)

    def pipeline(x):
        return pd_up(net(pd_down(x, factor, layout, pad)), factor, size, layout, pad)

    pipeline.in_channels = 3
    h, w = size
    x = torch.rand(1, 3, h, w, dtype=torch.float64)
    pixels = list(probe_pixels(h, w).values())
    for (row, col), grad in zip(pixels, input_gradients_at(pipeline, x, pixels)):
        assert grad[:, row, col].abs().max().item() == 0.0
        assert grad.abs().max() > 0


def test_blind_spot_test_sees_a_leak():
    """A deliberately broken network (masked conv skipped) must fail the test."""
    net = instantiate(compose_net("tbsn_small"))
    net.branch.embed.mask.fill_(1.0)
    with pytest.raises(AssertionError, match="leak"):
        assert_blind(net, (32, 32), train=False)


def test_global_gcsa_leak_is_small_and_measured():
    """The official code's global Gram leaks: about 1e-6 relative at 64x64 on 0-255 inputs (random weights)."""
    torch.manual_seed(0)
    net = TBSN(gcsa_mode="global").double().eval()
    x = torch.rand(1, 3, 64, 64, dtype=torch.float64) * 255
    (grad,) = input_gradients_at(net, x, [(32, 32)])
    relative = grad[:, 32, 32].abs().max().item() / grad.abs().max().item()
    assert 0 < relative < 1e-3
