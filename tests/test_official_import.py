"""Importing the official TBSN and AP-BSN weights: every saved layout, the official outputs
reproduced in float64, a wrong import caught, and one-line refusals of anything unknown.

The fixtures (../shared/fixtures, README there) hold what the official codes save and compute."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch

from denoise.errors import UserInputError
from denoise.lit import load_model
from denoise.lit.importing import import_official, write_checkpoint
from denoise.nets import TBSN
from denoise.nets.official import convert_official, official_state_dict
from denoise.ops.protocols import PROTOCOLS, protocol_name
from tests.conftest import REPO

TBSN_SMALL = ("tbsn_small", [])
# The AP-BSN fixture's DBSNl: 16 base channels, 2 modules per branch.
DBSN_FIXTURE = ("dbsn", ["channels=16", "num_blocks=2"])


def _script():
    spec = importlib.util.spec_from_file_location(
        "import_checkpoint", REPO / "scripts" / "import_checkpoint.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _script()


def relative(output: torch.Tensor, reference: torch.Tensor) -> float:
    return ((output - reference).abs().max() / reference.abs().max()).item()


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def layouts(state: dict) -> dict[str, object]:
    """The layouts the official codes save: plain or wrapped, each with and without ``bsn.``."""
    prefixed = {f"bsn.{key}": value for key, value in state.items()}
    return {
        "plain": state,
        "plain_bsn": prefixed,
        "wrapped": {"epoch": 3, "model_weight": {"denoiser": state}},
        "wrapped_bsn": {"epoch": 3, "model_weight": {"denoiser": prefixed}},
    }


def imported(path: Path, arch: str, net: tuple[str, list[str]]):
    name, keys = net
    return import_official(path, arch, SCRIPT.model_config(arch, name, keys), name)


@pytest.fixture
def tbsn_fixture(shared_fixtures) -> dict:
    return load(shared_fixtures / "official_tbsn_small.pt")


@pytest.fixture
def apbsn_fixture(shared_fixtures) -> dict:
    return load(shared_fixtures / "official_apbsn_small.pt")


def test_every_layout_of_both_codes_imports_to_the_same_checkpoint(tbsn_fixture, apbsn_fixture, tmp_path):
    plain_apbsn = official_state_dict(apbsn_fixture["checkpoint"], "fixture")
    for arch, state, (net, keys) in (
        ("tbsn", tbsn_fixture["state_dict"], TBSN_SMALL),
        ("apbsn", plain_apbsn, DBSN_FIXTURE),
    ):
        written = []
        for layout, content in layouts(state).items():
            torch.save(content, tmp_path / f"{arch}_{layout}.pth")
            out = tmp_path / f"{arch}_{layout}.ckpt"
            argv = [str(tmp_path / f"{arch}_{layout}.pth"), "--arch", arch, "--net", net, "--out", str(out)]
            assert SCRIPT.main(argv + (["--set", *keys] if keys else [])) == 0
            written.append(load(out)["state_dict"])
        for other in written[1:]:
            assert other.keys() == written[0].keys()
            assert all(torch.equal(other[key], written[0][key]) for key in other)
    # The trainer's layout of the AP-BSN fixture itself goes through as saved.
    torch.save(apbsn_fixture["checkpoint"], tmp_path / "apbsn_as_saved.pth")
    assert (
        SCRIPT.main(
            [
                str(tmp_path / "apbsn_as_saved.pth"),
                "--arch",
                "apbsn",
                "--set",
                *DBSN_FIXTURE[1],
                "--out",
                str(tmp_path / "as_saved.ckpt"),
            ]
        )
        == 0
    )


def test_imported_tbsn_reproduces_the_official_output_in_both_forms(tbsn_fixture, tmp_path):
    torch.save(tbsn_fixture["state_dict"], tmp_path / "official.pth")
    module = imported(tmp_path / "official.pth", "tbsn", TBSN_SMALL)
    x, reference = tbsn_fixture["input"], tbsn_fixture["output"]
    assert next(module.net.parameters()).dtype == torch.float64  # the official values, unrounded
    literal = TBSN(**{**_net_kwargs(module), "form": "literal"}).double().eval()
    literal.load_state_dict(module.net.state_dict())
    with torch.no_grad():
        assert relative(module.net(x), reference) < 1e-9  # phase form, as imported
        assert relative(literal(x), reference) < 1e-9

    # The written checkpoint: a BlindSpotModule like any other, with the official values and protocol.
    path = write_checkpoint(module, tmp_path / "imported.ckpt", {"file": "official.pth"})
    model = load_model(path)
    assert type(model.net) is TBSN and model.net.form == "phase"
    assert model.hparams.net["gcsa_mode"] == "global"
    assert protocol_name(model.inference) == "tbsn" and model.inference.ensemble == "none"
    assert model.benchmark_settings().ensemble == "protocol"
    model = model.double()
    model.load_state_dict(load(path)["state_dict"])
    with torch.no_grad():
        assert relative(model.net(x), reference) < 1e-9


def _net_kwargs(module) -> dict:
    return {key: value for key, value in module.hparams.net.items() if key != "_target_"}


def test_imported_apbsn_reproduces_the_official_pd2_protocol_and_dbsn(apbsn_fixture, tmp_path):
    torch.save(apbsn_fixture["checkpoint"], tmp_path / "official.pth")
    module = imported(tmp_path / "official.pth", "apbsn", DBSN_FIXTURE)
    x = apbsn_fixture["input"]  # 60x68: not a multiple of the phase strides' 6
    assert module.net.form == "literal"
    assert protocol_name(module.inference) == "apbsn"
    pd_only = dataclasses.replace(module.inference, r3_passes=0, tile_size=0)
    with torch.no_grad():
        assert relative(module.net(x), apbsn_fixture["output_dbsn_only"]) < 1e-9
        assert relative(module.denoise(x / 255, pd_only) * 255, apbsn_fixture["output_pd2"]) < 1e-9


def test_a_wrong_import_does_not_reproduce_the_output(tbsn_fixture, apbsn_fixture):
    """The check can fail: relative tables one row off, or two weights of one shape swapped."""
    state = official_state_dict(tbsn_fixture["state_dict"], "fixture")
    net = (
        TBSN(
            dim=16,
            num_blocks=(1, 1, 1),
            num_refinement_blocks=1,
            channel_heads=(1, 1, 2),
            window_heads=(1, 1, 2),
            gcsa_mode="global",
        )
        .double()
        .eval()
    )
    good = convert_official(state, "tbsn", net, "fixture", "tbsn_small")
    one_row_off = {
        key: value.roll(1, dims=0) if key.endswith(("rel_height", "rel_width")) else value
        for key, value in good.items()
    }
    ffn = "branch.body.encoder1.0.layers.1"
    swapped = {
        **good,
        f"{ffn}.conv_in.weight": good[f"{ffn}.conv_out.weight"],
        f"{ffn}.conv_out.weight": good[f"{ffn}.conv_in.weight"],
    }
    x, reference = tbsn_fixture["input"], tbsn_fixture["output"]
    with torch.no_grad():
        net.load_state_dict(good)
        assert relative(net(x), reference) < 1e-9
        for wrong in (one_row_off, swapped):
            net.load_state_dict(wrong)
            assert relative(net(x), reference) > 1e-4

    from denoise.nets import DBSN

    dbsn = DBSN(channels=16, num_blocks=2, form="literal").double().eval()
    good = convert_official(official_state_dict(apbsn_fixture["checkpoint"], "f"), "apbsn", dbsn, "f", "dbsn")
    block = "branches.1.body.{}.conv.weight"
    dbsn.load_state_dict(
        {**good, block.format(5): good[block.format(6)], block.format(6): good[block.format(5)]}
    )
    with torch.no_grad():
        assert relative(dbsn(apbsn_fixture["input"]), apbsn_fixture["output_dbsn_only"]) > 1e-4


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda s: s.update({"encoder_level1.0.extra.weight": torch.zeros(1)}),
            "unknown key 'encoder_level1.0.extra",
        ),
        (
            lambda s: s.pop("latent.0.norm3.body.weight"),
            "no weight for 'branch.body.latent.0.norms.2.weight'",
        ),
        (
            lambda s: s.update({"output.weight": torch.zeros(3, 16, 1, 1)}),
            r"'output.weight' has shape \(3, 16, 1, 1\) but tbsn_small needs \(3, 32, 1, 1\)",
        ),
        (
            lambda s: s.update({"output.bias": torch.zeros(3)}),
            "'output.bias' \\(here 'head.bias'\\) is not a weight",
        ),
        (lambda s: s["patch_embed.proj.mask"].fill_(1.0), "patch_embed.proj.mask is not a centre mask"),
        (
            lambda s: s["latent.0.spatial_attn.fixed_pos_emb.attention_mask"].zero_(),
            "attention_mask .* is not the",
        ),
    ],
)
def test_anything_unrecognised_is_refused_in_one_line_naming_the_key(tbsn_fixture, tmp_path, change, message):
    state = {key: value.clone() for key, value in tbsn_fixture["state_dict"].items()}
    change(state)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(UserInputError, match=message) as caught:
        imported(tmp_path / "odd.pth", "tbsn", TBSN_SMALL)
    assert "\n" not in str(caught.value) and "odd.pth" in str(caught.value)


def test_foreign_files_and_layouts_are_refused_in_one_line(tmp_path, capsys):
    torch.save({"model_weight": {"generator": {}}}, tmp_path / "other.pth")
    torch.save({"bsn.head.0.weight": torch.zeros(1), "tail.0.weight": torch.zeros(1)}, tmp_path / "mixed.pth")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    for name, expected in (
        ("other.pth", "expected a 'denoiser' entry"),
        ("mixed.pth", "key 'tail.0.weight' lacks the 'bsn.' prefix"),
        ("text.pth", "not a readable PyTorch checkpoint"),
        ("absent.pth", "no such file"),
    ):
        assert SCRIPT.main([str(tmp_path / name), "--arch", "apbsn", "--out", str(tmp_path / "x.ckpt")]) == 1
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.ckpt").exists()


def test_recipes_carry_the_papers_protocols():
    tbsn, apbsn = SCRIPT.model_config("tbsn", "tbsn"), SCRIPT.model_config("apbsn", "dbsn")
    assert {key: tbsn["inference"][key] for key in PROTOCOLS["tbsn"]} == PROTOCOLS["tbsn"]
    assert tbsn["inference"]["ensemble"] == "none" and tbsn["benchmark_inference"] == {"ensemble": "protocol"}
    assert {key: apbsn["inference"][key] for key in PROTOCOLS["apbsn"]} == PROTOCOLS["apbsn"]
    assert apbsn["inference"]["ensemble"] == "none" and not apbsn["benchmark_inference"]
    # AP-BSN's training: PD 5 in the mosaic layout with padding 2, every sub-image, Adam 1e-4.
    assert apbsn["train_pd"] == {"factor": 5, "layout": "mosaic", "pad": 2, "keep": "all"}
    assert apbsn["optimizer"]["_target_"] == "torch.optim.Adam" and apbsn["optimizer"]["lr"] == 1e-4
    assert apbsn["optimizer"]["weight_decay"] == 0 and apbsn["net"]["form"] == "literal"
