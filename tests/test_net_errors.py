"""A bad network setting is one line naming the key, the value and what is expected, never a traceback.

The rules of TBSN's and HCANet's settings are written on the fields of their options dataclasses,
so the check before any work (``denoise.cli.config_rules``) and the constructor read the same
rule; what needs two settings at once (heads against channels, a block against the form) is
checked by the constructor, which raises the same kind of one-line ``ConfigError``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Annotated, Any

import pytest
from omegaconf import OmegaConf

from denoise.cli.config_rules import EXTERNAL, check_train_config
from denoise.errors import ConfigError
from denoise.nets import TBSN, BlindSpotHCANet, HCANet
from denoise.nets.hcanet import HCANetOptions
from denoise.nets.tbsn import TBSNOptions
from denoise.nn import (
    BiLevelRoutingAttention,
    BlockSpec,
    ChannelAttention,
    DualRepresentationFusion,
    MaskedWindowAttention,
    MultiScaleDilatedAttention,
    MultiScaleFeedForward,
    SimplifiedChannelAttention,
    build_block,
)
from denoise.rules import checked, integer, rules_of, setting_names
from tests.conftest import compose_train, run_entry

SMALL = {"dim": 8, "num_blocks": (1, 1, 1), "num_refinement_blocks": 1}
KNOWN_BLOCKS = "bra, cafm, ffn, gcsa, gdfn, mdta, msda, msfn, mwsa, sca"
LAYOUT = f"a non-empty list of block names ({KNOWN_BLOCKS}), or 3 such lists (level 1, level 2, latent)"

HEADS = "expected one head count per level (level 1, level 2, latent), each dividing its channels"
WINDOW = (
    "MaskedWindowAttention: window=6 and halo=1 (= window * overlap / 2) must be multiples of the phase stride 2, "
    "or the mask is not blind-spot safe"
)
POSITIVE_LIST = "expected a list of 1 or more values, each an integer >= 1"

# (network settings of the demo's TBSN, the line the check before any work gives).
BAD_CONFIG_VALUES = [
    ({"skip_fusion": "foo"}, "model.net.skip_fusion='foo': expected one of concat, mdaf"),
    ({"gcsa_mode": "bad"}, "model.net.gcsa_mode='bad': expected one of phase, global"),
    ({"form": "full"}, "model.net.form='full': expected one of phase, literal"),
    ({"block_layout": ["gcsa", "foo"]}, f"model.net.block_layout=['gcsa', 'foo']: expected {LAYOUT}"),
    ({"block_layout": [["gcsa"], ["ffn"]]}, f"model.net.block_layout=[['gcsa'], ['ffn']]: expected {LAYOUT}"),
    ({"block_options": {"n_win": 4}}, (
        "model.net.block_options={'n_win': 4}: expected null or a mapping of block settings among dilations, "
        "norm_bias, regions, topk (the others are TBSN options of their own)"
    )),
    ({"dim": 15}, "model.net.dim=15: expected an even integer >= 2"),
]

# (what builds the network or block, the one line it raises).
BAD_CONSTRUCTIONS = [
    (lambda: TBSN(skip_fusion="foo", **SMALL), "TBSN: skip_fusion='foo': expected one of concat, mdaf"),
    (lambda: TBSN(gcsa_mode="bad", **SMALL), "TBSN: gcsa_mode='bad': expected one of phase, global"),
    (lambda: TBSN(block_layout=["gcsa", "foo"], **SMALL), f"TBSN: block_layout=['gcsa', 'foo']: expected {LAYOUT}"),
    (lambda: TBSN(dim=15), "TBSN: dim=15: expected an even integer >= 2"),
    (lambda: TBSN(channel_heads=[3, 1, 2], **SMALL), f"TBSN: channel_heads=[3, 1, 2]: {HEADS} [8, 16, 32]"),
    (lambda: TBSN(form="literal", skip_fusion="mdaf", **SMALL), (
        "TBSN: skip_fusion='mdaf' has no literal (full-resolution) form: MDAF's strips and row/column attention "
        "are exactly blind only inside the phase-split body; use form='phase'"
    )),
    (lambda: TBSN(form="literal", block_layout=["bra", "ffn"], **SMALL), (
        "block 'bra' has no 'literal' form (it has: phase). It is exactly blind only inside a phase-split body: "
        "use form='phase'."
    )),
    (lambda: TBSN(window=6, **SMALL), WINDOW),
    (lambda: TBSN(block_layout=["msda"], head_dim=4, block_options={"dilations": [1, 2, 3]}, **SMALL), (
        "block 'msda': dim // head_dim = 8 // 4 = 2 heads is not a multiple of the number of dilation rates (3); "
        "choose head_dim so that every level's channels (dim, 2*dim, 4*dim) are multiples of head_dim * 3"
    )),
    (lambda: TBSN(block_layout=["bra"], head_dim=4, block_options={"regions": 0}, **SMALL),
     "BiLevelRoutingAttention: regions=0: expected an integer >= 1"),
    (lambda: HCANet(heads=[3, 1, 1], **SMALL), f"HCANet: heads=[3, 1, 1]: {HEADS} [8, 16, 32]"),
    (lambda: BlindSpotHCANet(dim=7), "HCANet: dim=7: expected an even integer >= 2"),
    (lambda: BlindSpotHCANet(dilations=[]), f"HCANet: dilations=[]: {POSITIVE_LIST}"),
    (lambda: build_block("nope", BlockSpec(dim=8)), f"unknown block 'nope'; expected one of {KNOWN_BLOCKS}"),
    (lambda: ChannelAttention(8, gram="bad"), "ChannelAttention: gram='bad': expected one of phase, global"),
    (lambda: ChannelAttention(8, heads=3), "ChannelAttention: heads=3 must divide dim=8"),
    (lambda: MaskedWindowAttention(8, window=6), WINDOW),
    (lambda: MultiScaleDilatedAttention(8, heads=2, dilations=(0, 1)),
     f"MultiScaleDilatedAttention: dilations=(0, 1): {POSITIVE_LIST}"),
    (lambda: MultiScaleDilatedAttention(8, kernel_size=4),
     "MultiScaleDilatedAttention: kernel_size=4: expected an odd integer >= 1"),
    (lambda: MultiScaleDilatedAttention(8, heads=2), (
        "MultiScaleDilatedAttention: heads (2) must be a multiple of the number of dilation rates (3) "
        "and divide dim (8)"
    )),
    (lambda: MultiScaleFeedForward(8, dilations=()), f"MultiScaleFeedForward: dilations=(): {POSITIVE_LIST}"),
    (lambda: BiLevelRoutingAttention(8, topk=0), "BiLevelRoutingAttention: topk=0: expected an integer >= 1"),
    (lambda: BiLevelRoutingAttention(8, lepe_kernel=4),
     "BiLevelRoutingAttention: lepe_kernel=4: expected an odd integer >= 1"),
    (lambda: BiLevelRoutingAttention(8, heads=3), "BiLevelRoutingAttention: dim 8 is not divisible by heads 3"),
    (lambda: DualRepresentationFusion(8, heads=3), "DualRepresentationFusion: dim 8 is not divisible by heads 3"),
    (lambda: DualRepresentationFusion(8, strip_kernels=(7, 10)), (
        "DualRepresentationFusion: strip_kernels=(7, 10): expected a list of 1 or more values, "
        "each an odd integer >= 1"
    )),
    (lambda: SimplifiedChannelAttention(3, expansion=1),
     "SimplifiedChannelAttention: dim * expansion = 3 is odd; SimpleGate halves it"),
]


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    return compose_train([], tmp_path_factory.mktemp("config"))


def with_net_values(cfg, values: dict):
    changed = copy.deepcopy(cfg)
    for key, value in values.items():
        OmegaConf.update(changed, f"model.net.{key}", value, force_add=True)
    return changed


@pytest.mark.parametrize(("values", "line"), BAD_CONFIG_VALUES, ids=lambda v: str(v))
def test_a_bad_tbsn_setting_is_refused_before_any_work_in_one_line(demo_config, values, line):
    with pytest.raises(ConfigError) as error:
        check_train_config(with_net_values(demo_config, values))
    assert str(error.value) == line


@pytest.mark.parametrize("index", range(len(BAD_CONSTRUCTIONS)))
def test_a_constructor_refuses_a_bad_setting_in_one_line(index):
    build, line = BAD_CONSTRUCTIONS[index]
    with pytest.raises(ConfigError) as error:
        build()
    assert str(error.value) == line


def test_the_rules_of_tbsn_and_hcanet_are_written_on_their_option_fields():
    """No table beside the code: the rules the config check reads are the options' own annotations."""
    for network, options in ((TBSN, TBSNOptions), (HCANet, HCANetOptions), (BlindSpotHCANet, HCANetOptions)):
        assert not any(issubclass(network, cls) for cls in EXTERNAL)
        assert rules_of(network) == {**rules_of(options), "in_channels": rules_of(network)["in_channels"]}
        assert setting_names(network) == {field.name for field in fields(options)} | {"in_channels"}
        # Every setting has a rule but kernels, which its resolution checks ("auto" included).
        assert {field.name for field in fields(options)} - set(rules_of(options)) == {"kernels"}


@dataclass
class LabOptions:
    width: Annotated[int, integer(1)] = 8


class LabBlock:
    @checked("LabBlock: ")
    def __init__(self, depth: Annotated[int, integer(0)] = 1, **options: Annotated[Any, LabOptions]):
        self.options = LabOptions(**options)


def test_keyword_options_read_by_a_dataclass_are_the_constructors_settings():
    assert set(rules_of(LabBlock)) == {"depth", "width"}
    assert setting_names(LabBlock) == {"depth", "width"}
    with pytest.raises(ConfigError, match=r"^LabBlock: width=0: expected an integer >= 1$"):
        LabBlock(width=0)
    assert LabBlock(depth=0, width=2).options.width == 2


def test_train_prints_a_constructor_error_as_one_line_and_exits_1(demo_config, capsys):
    import train as train_entry

    with pytest.raises(SystemExit) as stop:
        train_entry.main(with_net_values(demo_config, {"channel_heads": [3, 1, 2]}))
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: TBSN: channel_heads=[3, 1, 2]: {HEADS} [16, 32, 64]"
    )


@pytest.mark.slow
def test_bad_network_settings_through_train_py(tmp_path):
    """The command lines users type: one line on stderr, exit status 1, no traceback."""
    for args, line in (
        (["model.net.skip_fusion=foo"], "error: model.net.skip_fusion='foo': expected one of concat, mdaf"),
        (["model/net=bsn_mdaf", "model.net.skip_fusion=foo"],
         "error: model.net.skip_fusion='foo': expected one of concat, mdaf"),
        (["model.net.gcsa_mode=bad"], "error: model.net.gcsa_mode='bad': expected one of phase, global"),
        (["model.net.block_layout=[gcsa,foo]"],
         f"error: model.net.block_layout=['gcsa', 'foo']: expected {LAYOUT}"),
        (["model/net=bsn_hcanet_small", "model.net.heads=[3,1,2]"],
         f"error: HCANet: heads=[3, 1, 2]: {HEADS} [16, 32, 64]"),
    ):
        result = run_entry("train.py", ["experiment=demo", "trainer.max_steps=1", *args], tmp_path / "run")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
        assert result.stderr.strip().splitlines()[-1] == line
        assert not (tmp_path / "run" / "checkpoints").exists()
