"""Blocks of denoise.nn one by one: shapes, gradients, forms, and the equivalences they promise."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from denoise.errors import ConfigError
from denoise.nets import TBSN
from denoise.nn import (
    BLOCK_FORMS,
    BLOCKS,
    BiLevelRoutingAttention,
    BlockSpec,
    ChannelAttention,
    ConvAttentionFusion,
    DualRepresentationFusion,
    build_block,
)
from denoise.nn.dual_representation_fusion import StripConvs
from denoise.ops import phase_merge, phase_split

FAMILIES = ("gcsa", "mdta", "mwsa", "msda", "bra", "cafm", "msfn", "ffn", "gdfn")
PHASE_ONLY = ("mdta", "bra", "cafm")
# Tiny but valid for every block: msda needs dim = head_dim * heads with heads a multiple of 3.
TINY = BlockSpec(dim=6, head_dim=2, channel_heads=2, window_heads=2, window=8, regions=2, topk=2)


def block(name: str, spec: BlockSpec = TINY, dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_block(name, spec).to(dtype)


def sizes_for(name: str) -> list[tuple[int, int]]:
    # M-WSA runs on whole windows (4x4 on phase sub-images); every other block takes any size.
    return [(12, 20), (4, 28)] if name == "mwsa" else [(9, 13), (5, 7), (1, 3)]


def test_every_family_is_registered_with_its_forms():
    assert set(FAMILIES) <= set(BLOCKS)
    for name in FAMILIES:
        expected = ("phase",) if name in PHASE_ONLY else ("phase", "literal")
        assert BLOCK_FORMS[name] == expected, name


@pytest.mark.parametrize("name", FAMILIES)
def test_block_keeps_shape_on_sizes_that_are_not_powers_of_two(name):
    net = block(name, BlockSpec(dim=12, head_dim=4, channel_heads=2, window_heads=2, regions=2, topk=2),
                torch.float32)
    for h, w in sizes_for(name):
        x = torch.randn(2, 12, h, w)
        y = net(x)
        assert y.shape == x.shape and torch.isfinite(y).all(), (name, h, w)


@pytest.mark.parametrize("name", FAMILIES)
def test_block_gradcheck_float64(name):
    net = block(name)
    h, w = (8, 8) if name == "mwsa" else (5, 7)
    x = torch.randn(1, TINY.dim, h, w, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(net, (x,), eps=1e-6, atol=1e-5)


def test_mdaf_shape_and_gradcheck():
    torch.manual_seed(0)
    fuse = DualRepresentationFusion(6, heads=2).double()
    for h, w in [(9, 13), (3, 25)]:
        x1, x2 = torch.randn(2, 2, 6, h, w, dtype=torch.float64)
        assert fuse(x1, x2).shape == x1.shape
    x1, x2 = torch.randn(2, 1, 6, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fuse, (x1, x2), eps=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        fuse(x1, x2[..., :-1])


def test_mdaf_starts_from_the_sum_when_its_projections_are_zero():
    fuse = DualRepresentationFusion(8, heads=2)
    for projection in (fuse.project_rows, fuse.project_columns):
        torch.nn.init.zeros_(projection.weight)
        torch.nn.init.zeros_(projection.bias)
    x1, x2 = torch.randn(2, 1, 8, 6, 10)
    torch.testing.assert_close(fuse(x1, x2), x1 + x2)


def test_mdaf_strips_run_as_two_convs_equal_to_the_six_separate_ones():
    strips = StripConvs(4, (7, 11, 21)).double()
    x = torch.randn(1, 4, 9, 30, dtype=torch.float64)
    separate = sum(
        F.conv2d(x, conv.weight, conv.bias, padding=(conv.kernel_size[0] // 2, conv.kernel_size[1] // 2), groups=4)
        for conv in [*strips.horizontal, *strips.vertical]
    )
    torch.testing.assert_close(strips(x), strips.project(separate))


@pytest.mark.parametrize("name", PHASE_ONLY)
def test_phase_only_block_refuses_the_literal_form_by_name(name):
    with pytest.raises(ConfigError, match=f"'{name}'.*literal"):
        build_block(name, BlockSpec(dim=12, head_dim=4, form="literal"))


@pytest.mark.parametrize("layout", [["bra", "ffn"], ["mdta", "gdfn"], ["cafm", "msfn"]])
def test_tbsn_literal_form_refuses_phase_only_blocks_by_name(layout):
    with pytest.raises(ConfigError, match=f"'{layout[0]}'"):
        TBSN(dim=12, num_blocks=(1, 1, 1), num_refinement_blocks=1, block_layout=layout, form="literal")


def test_tbsn_literal_form_refuses_mdaf_skips():
    with pytest.raises(ConfigError, match="mdaf"):
        TBSN(dim=8, num_blocks=(1, 1, 1), num_refinement_blocks=1, form="literal", skip_fusion="mdaf")


@pytest.mark.parametrize("name", ["msda", "gdfn", "msfn"])
def test_literal_block_on_full_map_equals_phase_block_on_sub_images(name):
    """Dilating by the stride at full resolution reads exactly the pixel's own phase sub-image."""
    phase_net = block(name)
    literal_net = block(name, replace(TINY, form="literal"))
    literal_net.load_state_dict(phase_net.state_dict())
    x = torch.randn(2, TINY.dim, 10, 14, dtype=torch.float64)
    torch.testing.assert_close(literal_net(x), phase_merge(phase_net(phase_split(x, 2)), 2))


def test_tbsn_phase_and_literal_forms_agree_with_new_blocks():
    torch.manual_seed(0)
    kwargs = {"dim": 6, "num_blocks": (1, 1, 1), "num_refinement_blocks": 1, "head_dim": 2,
              "block_layout": [["msda", "gdfn"], ["msfn"], ["gcsa", "msda"]]}
    phase_net = TBSN(**kwargs).double()
    literal_net = TBSN(**kwargs, form="literal").double()
    literal_net.load_state_dict(phase_net.state_dict())
    x = torch.randn(1, 3, 16, 24, dtype=torch.float64)
    torch.testing.assert_close(literal_net(x), phase_net(x))


def test_mdta_is_gcsa_on_a_phase_sub_image():
    """In the phase form, G-CSA with a per-phase Gram and MDTA are the same operator."""
    torch.manual_seed(0)
    spec = BlockSpec(dim=8, channel_heads=2)
    mdta, gcsa = build_block("mdta", spec), build_block("gcsa", spec)
    gcsa.load_state_dict(mdta.state_dict())
    x = torch.randn(2, 8, 6, 10)
    torch.testing.assert_close(mdta(x), gcsa(x))


def test_cafm_without_its_local_branch_is_mdta():
    torch.manual_seed(0)
    cafm, mdta = ConvAttentionFusion(8, heads=2), ChannelAttention(8, heads=2, phase_stride=1)
    mdta.load_state_dict(cafm.state_dict(), strict=False)
    torch.nn.init.zeros_(cafm.local_conv.weight)
    torch.nn.init.zeros_(cafm.local_conv.bias)
    x = torch.randn(1, 8, 7, 9)
    torch.testing.assert_close(cafm(x), mdta(x))


def test_bra_routing_to_every_region_is_dense_attention_and_ignores_padding():
    """regions=2 with topk=4 sees every real token: it must equal one region (no routing), even on
    a 5x7 map padded to 6x8, which only holds if padded tokens are masked out everywhere."""
    torch.manual_seed(0)
    routed = BiLevelRoutingAttention(6, heads=2, regions=2, topk=4).double()
    dense = BiLevelRoutingAttention(6, heads=2, regions=1, topk=1).double()
    dense.load_state_dict(routed.state_dict())
    x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(routed(x), dense(x))


def test_bra_topk_larger_than_the_region_count_is_clamped():
    net = BiLevelRoutingAttention(6, heads=2, regions=2, topk=9)
    assert net(torch.randn(1, 6, 3, 3)).shape == (1, 6, 3, 3)


def test_bad_configuration_is_refused_with_a_clear_message():
    with pytest.raises(ConfigError, match="unknown block 'nope'; expected one of .*gcsa"):
        build_block("nope", TINY)
    with pytest.raises(ConfigError, match="head_dim"):
        build_block("msda", BlockSpec(dim=10, head_dim=4))
    with pytest.raises(ConfigError, match="multiple of the number of dilation"):
        build_block("msda", BlockSpec(dim=8, head_dim=4))
    with pytest.raises(ConfigError, match="regions=0: expected an integer >= 1"):
        build_block("bra", BlockSpec(dim=8, head_dim=4, regions=0))
    with pytest.raises(ConfigError, match=r"block_options=\{'n_win': 4\}: expected null or a mapping"):
        TBSN(dim=8, block_options={"n_win": 4})
    with pytest.raises(ConfigError, match="block_layout"):
        TBSN(dim=8, block_layout=[["gcsa"], ["ffn"]])
    with pytest.raises(ConfigError, match="skip_fusion"):
        TBSN(dim=8, skip_fusion="add")
