"""Blind-spot networks built from the blocks of denoise.nn, as the configs in configs/model/net build them.

Every config added with the attention blocks must be exactly blind (float64 gradient test, train
and eval mode, centre/border/corner) and pass the perturbation test (routing is discrete). The
tests at the end check that these tests can fail: a block used outside the phase-split body leaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from torch import nn

from denoise.nets import TBSN, BlindSpotHCANet, HCANet
from denoise.nets.blindness import input_gradients_at, perturbation_change, probe_pixels
from denoise.nn import BiLevelRoutingAttention, CentreMaskedConv2d, ChannelAttention
from denoise.nn.transformer import TransformerBlock

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "model"
BLOCK_CONFIGS = (
    "bsn_gcsa_mwsa", "bsn_mdta", "bsn_msda", "bsn_bra", "bsn_cafm_msfn", "bsn_mdaf", "bsn_hcanet_small",
)
FAMILIES = ("mwsa", "mdta", "gcsa", "msda", "bra", "cafm", "msfn", "mdaf")
SIZE = (36, 52)  # not powers of two, and not multiples of the nets' size_multiple: padding is exercised


def compose_config(group: str, name: str):
    GlobalHydra.instance().clear()  # another test may have left Hydra initialised
    with initialize_config_dir(str(CONFIGS / group), version_base="1.3"):
        return compose(config_name=name)


def build(name: str, group: str = "net") -> tuple[nn.Module, int]:
    cfg = compose_config(group, name)
    torch.manual_seed(0)
    return instantiate(cfg), cfg.in_channels


def neighbour(pixel: tuple[int, int], width: int) -> tuple[int, int]:
    row, col = pixel
    return row, col - 1 if col == width - 1 else col + 1


def assert_exactly_blind(net: nn.Module, x: torch.Tensor) -> None:
    pixels = probe_pixels(*x.shape[-2:])
    grads = input_gradients_at(net, x, list(pixels.values()))
    for (where, pixel), grad in zip(pixels.items(), grads):
        assert torch.all(grad[:, pixel[0], pixel[1]] == 0.0), f"leak at the {where} pixel {pixel}"
        row, col = neighbour(pixel, x.shape[-1])
        assert grad[:, row, col].abs().max() > 0, f"no gradient next to the {where} pixel: the test is vacuous"


def test_every_block_family_has_a_blind_spot_config():
    names = [path.stem for path in (CONFIGS / "net").glob("*.yaml")]
    for family in FAMILIES:
        assert any(family in name for name in names), f"no config in configs/model/net names {family!r}"


@pytest.mark.parametrize("name", BLOCK_CONFIGS)
def test_config_composes_and_keeps_shape(name):
    net, in_channels = build(name)
    for h, w in [(30, 46), (17, 23)]:
        x = torch.randn(2, in_channels, h, w)
        assert net(x).shape == x.shape, (name, h, w)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", BLOCK_CONFIGS)
def test_config_is_exactly_blind(name, mode):
    net, in_channels = build(name)
    net = net.double().train(mode == "train")
    torch.manual_seed(1)
    assert_exactly_blind(net, torch.randn(1, in_channels, *SIZE, dtype=torch.float64))


@pytest.mark.parametrize("name", BLOCK_CONFIGS)
def test_config_passes_the_perturbation_test(name):
    """Discrete choices (BRA's top-k routing) are invisible to gradients: move x(p), watch out(p)."""
    net, in_channels = build(name)
    net = net.double().eval()
    torch.manual_seed(2)
    x = torch.randn(1, in_channels, *SIZE, dtype=torch.float64)
    for pixel in probe_pixels(*SIZE).values():
        assert perturbation_change(net, x, pixel, amount=50.0) <= 1e-10, pixel


def test_per_level_layout_puts_the_named_blocks_on_each_level():
    net, _ = build("bsn_gcsa_mwsa")
    body = net.branch.body

    def layout(stage: nn.Sequential) -> list[str]:
        block = stage[0]
        assert isinstance(block, TransformerBlock)
        # The phase form builds the fast kernels: each a subclass of the block it speeds up.
        return [type(layer).__name__.removeprefix("Fast") for layer in block.layers]

    assert layout(body.encoder1) == layout(body.refinement) == [
        "ChannelAttention", "DilatedFeedForward", "MaskedWindowAttention", "DilatedFeedForward"
    ]
    assert layout(body.latent) == ["MaskedWindowAttention", "DilatedFeedForward"]


def test_mdaf_skips_change_only_the_fusion_and_level_one_width():
    plain, fused = TBSN(dim=8, num_blocks=(1, 1, 1)), TBSN(dim=8, num_blocks=(1, 1, 1), skip_fusion="mdaf")
    assert hasattr(plain.branch.body, "reduce2") and not hasattr(fused.branch.body, "reduce2")
    assert fused.branch.body.out_channels == 8 and fused.head.in_channels == 8


def test_tbsn_paper_defaults_are_unchanged():
    net = TBSN()
    assert sum(p.numel() for p in net.parameters()) == 12_746_780
    keys = net.state_dict().keys()
    assert "branch.body.reduce2.weight" in keys and not any("fuse" in key for key in keys)
    assert net.size_multiple == 32


def test_hcanet_student_config_is_the_paper_network():
    net, in_channels = build("hcanet", group="student")
    assert in_channels == 31
    # The paper's ~4.6M counts Conv3d kernels on a depth-1 axis; see denoise/nets/hcanet.py.
    assert sum(p.numel() for p in net.parameters()) == 4_122_191
    x = torch.randn(1, 31, 22, 30)
    assert net(x).shape == x.shape


def test_hcanet_has_a_global_residual_and_is_not_blind():
    torch.manual_seed(0)
    net = HCANet(in_channels=4, dim=8, num_blocks=(1, 1, 1), heads=(1, 1, 2)).double()
    x = torch.randn(1, 4, 10, 14, dtype=torch.float64)
    (grad,) = input_gradients_at(net, x, [(5, 7)])
    assert grad[:, 5, 7].abs().max() > 0  # a student / supervised network: it must see x(p)
    nn.init.zeros_(net.output.weight)
    torch.testing.assert_close(net(x), x)


def test_small_student_config_composes():
    net, in_channels = build("hcanet_small", group="student")
    x = torch.randn(1, in_channels, 13, 19)
    assert net(x).shape == x.shape


def test_blind_spot_hcanet_refuses_wrong_channels():
    with pytest.raises(ValueError, match="in_channels"):
        BlindSpotHCANet(in_channels=3, dim=8, num_blocks=(1, 1, 1))(torch.randn(1, 4, 16, 16))


# The blind-spot tests must be able to fail: each net below uses a block where it leaks.


class FullResolution(nn.Module):
    """Masked conv, then ``block`` at full resolution (not on phase sub-images), then a 1x1 head."""

    def __init__(self, block: nn.Module, channels: int = 8):
        super().__init__()
        self.embed = CentreMaskedConv2d(3, channels, phase_stride=2)
        self.block = block
        self.head = nn.Conv2d(channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.embed(x)))


class PlainUnshuffle(nn.Module):
    """A plain pixel-unshuffle puts the 4 phases of a 2x2 cell in one position: it leaks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.pixel_unshuffle(x, 2).roll(1, dims=1), 2)


class DiscreteGate(nn.Module):
    """Keeps f(p) where the 3x3 mean around p is positive: x(p) moves the gate but not f(p)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (F.avg_pool2d(x, 3, stride=1, padding=1) > 0)


def leaks_in_gradient(net: nn.Module) -> bool:
    torch.manual_seed(0)
    net = net.double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    (grad,) = input_gradients_at(net, x, [(8, 8)])
    return bool(grad[:, 8, 8].abs().max() > 0)


@pytest.mark.parametrize(
    "make_block",
    [lambda: ChannelAttention(8, heads=1, phase_stride=1), PlainUnshuffle],
    ids=["mdta-full-resolution", "plain-pixel-unshuffle"],
)
def test_gradient_test_sees_a_leak(make_block):
    torch.manual_seed(0)
    assert leaks_in_gradient(FullResolution(make_block()))


def test_only_the_perturbation_test_sees_a_discrete_leak():
    torch.manual_seed(0)
    net = FullResolution(DiscreteGate()).double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    (grad,) = input_gradients_at(net, x, [(8, 8)])
    assert torch.all(grad[:, 8, 8] == 0.0)  # the gradient test passes ...
    assert perturbation_change(net, x, (8, 8), amount=50.0) > 1e-3  # ... yet the output moves


def test_perturbation_test_sees_routing_attention_at_full_resolution():
    torch.manual_seed(0)
    net = FullResolution(BiLevelRoutingAttention(8, heads=2, regions=2, topk=1)).double()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    assert perturbation_change(net, x, (8, 8), amount=50.0) > 1e-6
