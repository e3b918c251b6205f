"""The two kernels, reference and fast, compute the same function in every form.

Every (form, kernels) pair of TBSN and DBSN, and every block registered with both kernels, gives
the same outputs and the same gradients in float64, in train and eval mode, from the same
parameters; every hand-written backward of ``denoise.nn.autograd`` passes gradcheck. The kernels
are chosen when a network is built: each build holds the layers of its kernels only, and no code
changes the class of a built module.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import replace
from itertools import product
from pathlib import Path

import pytest
import torch
from einops import rearrange
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import open_dict
from torch import nn

import denoise
import denoise.nn.autograd as autograd_functions
from denoise.nets import DBSN, TBSN, BlindSpotHCANet, HCANet
from denoise.nets.blindness import input_gradients_at, probe_pixels
from denoise.nn import (
    BLOCK_FORMS,
    BLOCK_KERNELS,
    BLOCKS,
    KERNELS,
    FastLayerNorm2d,
    LayerNorm2d,
    PointwiseConv2d,
    build_block,
)
from denoise.nn.fast_layers import is_channels_last
from denoise.nn.registry import BlockSpec
from tests.conftest import CONFIGS

FORMS_AND_KERNELS = list(product(("phase", "literal"), KERNELS))
SMALL_TBSN = {
    "dim": 8, "num_blocks": (1, 1, 1), "num_refinement_blocks": 1, "channel_heads": (1, 1, 2), "window_heads": (1, 1, 2)
}
TWO_KERNEL_BLOCKS = sorted(name for name, kernels in BLOCK_KERNELS.items() if kernels == KERNELS)
FAST_LAYERS = (PointwiseConv2d, FastLayerNorm2d)
# Every network config, and the networks among them that take ``kernels``.
NETWORK_CONFIGS = [(group, path.stem) for group in ("net", "student")
                   for path in sorted((CONFIGS / "model" / group).glob("*.yaml"))]
KERNEL_NETWORKS = (TBSN, DBSN, HCANet, BlindSpotHCANet)


def outputs_and_gradients(net: nn.Module, x: torch.Tensor, train: bool) -> list[torch.Tensor]:
    """The output, the input's gradient and every parameter's, for a loss weighing each output."""
    net.train(train)
    x = x.clone().requires_grad_()
    out = net(x)
    weight = torch.linspace(-1, 2, out.numel(), dtype=out.dtype).view_as(out)
    return [out.detach(), *torch.autograd.grad((out * weight).sum(), [x, *net.parameters()])]


def assert_same(expected: list[torch.Tensor], got: list[torch.Tensor], what: str):
    for index, (a, b) in enumerate(zip(expected, got, strict=True)):
        assert (a - b).abs().max() <= 1e-10 * max(a.abs().max().item(), 1.0), f"{what}: tensor {index}"


def twins(build, pairs=FORMS_AND_KERNELS) -> dict[tuple[str, str], nn.Module]:
    """``build(form, kernels)`` for every pair, in float64, all holding the first one's parameters."""
    nets = {}
    for form, kernels in pairs:
        torch.manual_seed(0)
        nets[form, kernels] = build(form, kernels).double()
    first = next(iter(nets.values())).state_dict()
    for net in nets.values():
        net.load_state_dict(first)  # the same keys and shapes, or this raises
    return nets


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("gcsa_mode", ["phase", "global"])
def test_every_form_and_kernels_pair_of_tbsn_is_the_same_function(gcsa_mode, train):
    nets = twins(lambda form, kernels: TBSN(form=form, kernels=kernels, gcsa_mode=gcsa_mode, **SMALL_TBSN))
    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 48, dtype=torch.float64) * 255
    expected = outputs_and_gradients(nets["literal", "reference"], x, train)
    for pair, net in nets.items():
        assert_same(expected, outputs_and_gradients(net, x, train), f"TBSN {pair}")
        with torch.no_grad():  # the fast body's CPU inference runs independent entries one by one
            assert_same(expected[:1], [net(x)], f"TBSN {pair} without gradients")


@pytest.mark.parametrize("layout", [["mdta", "gdfn"], ["cafm", "msfn"], ["bra", "ffn"]], ids="-".join)
def test_both_kernels_of_phase_only_blocks_in_tbsn_are_the_same_function(layout):
    options = {"block_layout": layout, "head_dim": 4, "block_options": {"regions": 2, "topk": 2}}
    nets = twins(
        lambda form, kernels: TBSN(form=form, kernels=kernels, **options, **SMALL_TBSN),
        pairs=[("phase", "reference"), ("phase", "fast")],
    )
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (True, False):
        expected = outputs_and_gradients(nets["phase", "reference"], x, train)
        assert_same(expected, outputs_and_gradients(nets["phase", "fast"], x, train), f"{layout} train={train}")


def test_both_kernels_of_mdaf_skips_are_the_same_function():
    nets = twins(
        lambda form, kernels: TBSN(form=form, kernels=kernels, skip_fusion="mdaf", **SMALL_TBSN),
        pairs=[("phase", "reference"), ("phase", "fast")],
    )
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (True, False):
        expected = outputs_and_gradients(nets["phase", "reference"], x, train)
        assert_same(expected, outputs_and_gradients(nets["phase", "fast"], x, train), f"MDAF skips train={train}")


@pytest.mark.parametrize("network, channels", [(HCANet, 4), (BlindSpotHCANet, 3)], ids=["HCANet", "BlindSpotHCANet"])
def test_both_kernels_of_hcanet_are_the_same_function(network, channels):
    nets = twins(lambda form, kernels: network(channels, kernels=kernels, dim=8, num_blocks=(1, 1, 1), heads=(1, 1, 2)),
                 pairs=[("phase", "reference"), ("phase", "fast")])
    x = torch.rand(1, channels, 16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for train in (True, False):
        expected = outputs_and_gradients(nets["phase", "reference"], x, train)
        assert_same(expected, outputs_and_gradients(nets["phase", "fast"], x, train), f"train={train}")


def test_every_form_and_kernels_pair_of_dbsn_is_the_same_function():
    # Sides that are multiples of 6 (the phase strides 2 and 3), where DBSN's two forms agree.
    nets = twins(lambda form, kernels: DBSN(channels=8, num_blocks=2, form=form, kernels=kernels))
    x = torch.rand(2, 3, 18, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 255
    expected = outputs_and_gradients(nets["literal", "reference"], x, True)
    for pair, net in nets.items():
        assert_same(expected, outputs_and_gradients(net, x, True), f"DBSN {pair}")


def block_spec(form: str, kernels: str) -> BlockSpec:
    # Small but valid for every block; the per-form sizes below hold whole M-WSA windows.
    return BlockSpec(dim=12, head_dim=4, channel_heads=2, window_heads=2, form=form, kernels=kernels)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("name", TWO_KERNEL_BLOCKS)
def test_both_kernels_of_every_two_kernel_block_are_the_same_function(name, layout):
    pairs = [(form, kernels) for form, kernels in FORMS_AND_KERNELS if form in BLOCK_FORMS[name]]
    nets = twins(lambda form, kernels: build_block(name, block_spec(form, kernels)), pairs)
    for form in BLOCK_FORMS[name]:
        size = (8, 12) if form == "phase" else (16, 24)
        x = torch.randn(2, 12, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x = x.contiguous(memory_format=layout)
        reference, fast = nets[form, "reference"], nets[form, "fast"]
        for parameter in reference.parameters():  # no parameter left at its initial value
            nn.init.normal_(parameter, std=0.5)
        fast.load_state_dict(reference.state_dict())
        for train in (True, False):
            expected = outputs_and_gradients(reference, x, train)
            assert_same(expected, outputs_and_gradients(fast, x, train), f"{name} {form} train={train}")


def plain_layers(module: nn.Module) -> list[str]:
    """The 1x1 ungrouped ``nn.Conv2d`` and ``LayerNorm2d`` layers inside ``module``: those with a fast twin."""
    return [name for name, layer in module.named_modules()
            if (type(layer) is nn.Conv2d and layer.kernel_size == (1, 1) and layer.groups == 1)
            or type(layer) is LayerNorm2d]


def fast_layers(module: nn.Module) -> list[str]:
    return [name for name, layer in module.named_modules()
            if isinstance(layer, FAST_LAYERS) or type(layer).__name__.startswith("Fast")]


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_every_block_with_a_1x1_conv_or_a_norm_has_a_fast_twin_without_them(name):
    """A block's fast kernels hold the fast twins of all its 1x1 convs and norms, its reference
    kernels none: a new block with such layers registers both kernels (docs/new_block.md)."""
    for form in BLOCK_FORMS[name]:
        reference, fast = (build_block(name, block_spec(form, kernels)) for kernels in KERNELS)
        assert not fast_layers(reference), f"{name} {form}: the reference kernels hold fast layers"
        assert not plain_layers(fast), (
            f"{name} {form}: the fast kernels hold {plain_layers(fast)}; give the block a fast twin "
            f"whose pointwise class is PointwiseConv2d and register it with kernels=KERNELS"
        )


def compose_network(group: str, name: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS / "model" / group), version_base="1.3"):
        return compose(config_name=name)


@pytest.mark.parametrize("group, name", NETWORK_CONFIGS, ids=[f"{g}/{n}" for g, n in NETWORK_CONFIGS])
def test_every_network_config_holds_the_layers_of_its_kernels_only(group, name):
    cfg = compose_network(group, name)
    network = get_class(cfg._target_)
    if not issubclass(network, KERNEL_NETWORKS):
        # A network without the choice (a plain UNet, a wrapper of another network) takes no
        # kernels at all, so a config cannot set one that would be silently ignored.
        assert "kernels" not in inspect.signature(network.__init__).parameters, network
        return
    nets = {}
    for kernels in KERNELS:
        with open_dict(cfg):
            cfg.kernels = kernels
        torch.manual_seed(0)
        nets[kernels] = instantiate(cfg)
    assert not plain_layers(nets["fast"]) and fast_layers(nets["fast"])
    assert not fast_layers(nets["reference"])
    reference, fast = (net.state_dict() for net in nets.values())
    assert reference.keys() == fast.keys() and all(torch.equal(reference[key], fast[key]) for key in reference)


def test_no_code_changes_the_class_of_a_built_module():
    """Kernels are chosen when a module is built: no ``x.__class__ = ...`` anywhere in the package."""
    assignments = []
    for path in Path(denoise.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            assignments += [f"{path.name}:{node.lineno}" for target in targets
                            if isinstance(target, ast.Attribute) and target.attr == "__class__"]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setattr":
                assignments += [f"{path.name}:{node.lineno}" for arg in node.args[1:2]
                                if isinstance(arg, ast.Constant) and arg.value == "__class__"]
    assert not assignments


@pytest.mark.parametrize("form, kernels", [("phase", "reference"), ("literal", "fast")])
def test_the_pairs_no_config_uses_by_default_are_exactly_blind(form, kernels):
    torch.manual_seed(0)
    net = TBSN(form=form, kernels=kernels, **SMALL_TBSN).double()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    pixels = list(probe_pixels(32, 32).values())
    for train in (True, False):
        grads = input_gradients_at(net.train(train), x, pixels)
        assert all(grad[:, row, col].abs().max() == 0 for (row, col), grad in zip(pixels, grads))


def test_auto_kernels_are_fast_for_the_phase_form_and_reference_for_the_literal_form():
    assert TBSN(**SMALL_TBSN).options.kernels == "fast"
    assert TBSN(form="literal", **SMALL_TBSN).options.kernels == "reference"
    assert BlockSpec(dim=4).fast_kernels and not BlockSpec(dim=4, form="literal").fast_kernels
    assert DBSN(channels=4, num_blocks=1).kernels == "fast"
    assert DBSN(channels=4, num_blocks=1, form="literal").kernels == "reference"


@pytest.mark.parametrize("form, kernels", FORMS_AND_KERNELS)
def test_a_build_holds_the_layers_of_its_kernels_only(form, kernels):
    net = TBSN(form=form, kernels=kernels, **SMALL_TBSN)
    classes = {type(layer) for layer in net.modules()}
    plain_pointwise = any(type(layer) is nn.Conv2d and layer.kernel_size == (1, 1) and layer.groups == 1
                          for layer in net.modules())
    if kernels == "fast":
        assert LayerNorm2d not in classes and not plain_pointwise
        assert {FastLayerNorm2d, PointwiseConv2d} <= classes
    else:
        assert not {FastLayerNorm2d, PointwiseConv2d} & classes
        assert not any(type(layer).__name__.startswith("Fast") for layer in net.modules())
    assert net.state_dict().keys() == TBSN(**SMALL_TBSN).state_dict().keys()


def test_the_fast_body_runs_channels_last_and_the_reference_body_nchw():
    seen = {}
    for kernels in KERNELS:
        net = TBSN(kernels=kernels, **SMALL_TBSN)
        net.branch.body.encoder2.register_forward_hook(lambda _, inputs, __, k=kernels: seen.update({k: inputs[0]}))
        net(torch.rand(1, 3, 32, 32))
    assert is_channels_last(seen["fast"]) and seen["reference"].is_contiguous()


def test_unknown_kernels_are_a_one_line_error_naming_the_key():
    with pytest.raises(ValueError, match=r"^TBSN: kernels must be one of \('reference', 'fast'\) or 'auto', got 'quick'$"):
        TBSN(kernels="quick", **SMALL_TBSN)
    with pytest.raises(ValueError, match="HCANet: kernels must be one of"):
        HCANet(kernels="quick")
    with pytest.raises(ValueError, match="DBSN: kernels must be one of"):
        DBSN(kernels="quick")
    with pytest.raises(ValueError, match="BlockSpec: kernels must be one of"):
        replace(BlockSpec(dim=4), kernels="quick")


def _channels_last_views(*shape: int) -> torch.Tensor:
    """(..., c, n) views whose channel axis is innermost in memory, as G-CSA sees a channels-last map."""
    return torch.randn(*shape[:-2], shape[-1], shape[-2], dtype=torch.float64).transpose(-2, -1).requires_grad_()


# Each Function of denoise.nn.autograd with inputs for gradcheck (float64, small).
GRADCHECKS = {
    "ChannelsLastBothWays": lambda: (torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True),),
    "BiasFreeChannelNorm": lambda: (
        (1 + torch.randn(2, 5, 3, 4, dtype=torch.float64)).contiguous(memory_format=torch.channels_last)
        .requires_grad_(),
        torch.randn(5, dtype=torch.float64, requires_grad=True),
        1e-5,
    ),
    "RowGram": lambda: (_channels_last_views(2, 2, 3, 40), _channels_last_views(2, 2, 3, 40)),
    "KeyWindows": lambda: (torch.randn(2, 4, 8, 12, dtype=torch.float64, requires_grad=True), 2, 4, 1),
}


def test_every_autograd_function_of_the_package_lives_in_one_module_and_is_gradchecked():
    defined = {name for name, value in vars(autograd_functions).items()
               if inspect.isclass(value) and issubclass(value, torch.autograd.Function)
               and value.__module__ == autograd_functions.__name__}
    assert defined == set(GRADCHECKS)
    home = Path(autograd_functions.__file__)
    elsewhere = [path for path in Path(denoise.__file__).parent.rglob("*.py")
                 if path != home and "autograd.Function" in path.read_text()]
    assert not elsewhere, f"autograd Functions outside {home.name}: {elsewhere}"


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_hand_written_backward_passes_gradcheck(name):
    torch.manual_seed(0)
    function = getattr(autograd_functions, name)
    assert torch.autograd.gradcheck(function.apply, GRADCHECKS[name]())


def test_key_windows_are_those_of_unfold():
    t = torch.randn(2, 4, 8, 12, dtype=torch.float64)
    windows = autograd_functions.KeyWindows.apply(t, 2, 4, 1)
    unfolded = torch.nn.functional.unfold(t, 6, padding=1, stride=4)
    assert torch.equal(windows, rearrange(unfolded, "b (m d kk) n -> (b m n) d kk", m=2, kk=36))
