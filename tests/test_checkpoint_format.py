"""Checkpoints written before the official relative-table convention load into the same function."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from denoise.lit import BlindSpotModule, load_model
from denoise.lit.checkpoint_format import CHECKPOINT_FORMAT, FORMAT_KEY, RELATIVE_TABLE_NAMES
from denoise.lit.importing import write_checkpoint
from denoise.nn.window_attention import MaskedWindowAttention
from tests.conftest import compose_train


def _earlier_convention(table: torch.Tensor) -> torch.Tensor:
    """The inverse of the upgrade: row offset + 11 and unscaled q."""
    return torch.roll(table, -2, dims=0) / table.shape[-1] ** 0.5


def _module(tmp_path) -> BlindSpotModule:
    settings = OmegaConf.to_container(compose_train(["debug=fast"], tmp_path).model, resolve=True)
    settings.pop("_target_"), settings.pop("_recursive_")
    return BlindSpotModule(**settings).double().eval()


def test_a_format_1_checkpoint_computes_what_it_computed(tmp_path):
    module = _module(tmp_path)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = module.net(x)

    path = write_checkpoint(module, tmp_path / "today.ckpt", imported_from={})
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    assert checkpoint[FORMAT_KEY] == CHECKPOINT_FORMAT
    tables = [name for name in checkpoint["state_dict"] if name.endswith(("rel_height", "rel_width"))]
    assert tables  # tbsn_small has M-WSA
    del checkpoint[FORMAT_KEY]
    for name in tables:
        checkpoint["state_dict"][name] = _earlier_convention(checkpoint["state_dict"][name])
    torch.save(checkpoint, tmp_path / "earlier.ckpt")

    for name in ("today.ckpt", "earlier.ckpt"):
        loaded = load_model(tmp_path / name).double()
        with torch.no_grad():
            assert torch.allclose(loaded.net(x), expected, rtol=0, atol=1e-12), name

    # Without the upgrade the earlier tables would compute something else: the test can fail.
    unconverted = _module(tmp_path)
    unconverted.load_state_dict(checkpoint["state_dict"])
    with torch.no_grad():
        assert (unconverted.net(x) - expected).abs().max() > 1e-6


def test_a_checkpoint_naming_the_channel_count_in_ch_loads_and_computes_the_same(tmp_path):
    module = _module(tmp_path)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        expected = module.net(x)
    checkpoint = torch.load(write_checkpoint(module, tmp_path / "today.ckpt", imported_from={}), weights_only=False)
    net = checkpoint["hyper_parameters"]["net"]
    net["in_ch"] = net.pop("in_channels")  # as earlier versions saved it
    torch.save(checkpoint, tmp_path / "earlier.ckpt")

    loaded = load_model(tmp_path / "earlier.ckpt").double()
    assert loaded.net.in_channels == 3 and "in_ch" not in loaded.hparams.net
    with torch.no_grad():
        assert torch.equal(loaded.net(x), expected)


def test_the_upgrade_converts_the_tables_masked_window_attention_holds():
    """The upgrade finds the tables by parameter name: a renamed parameter must fail here."""
    parameters = {name for name, _ in MaskedWindowAttention(dim=8).named_parameters()}
    assert set(RELATIVE_TABLE_NAMES) <= parameters


def _spectral_module(tmp_path) -> BlindSpotModule:
    config = compose_train(["experiment=hsi_bsn", "data.bands=6", "model.net.spatial.dim=8", "model.net.hidden=8"],
                           tmp_path)
    settings = OmegaConf.to_container(config.model, resolve=True)
    settings.pop("_target_"), settings.pop("_recursive_")
    return BlindSpotModule(**settings).double().eval()


def test_a_format_2_spectral_checkpoint_loads_without_linear_paths_and_computes_what_it_computed(tmp_path):
    module = _spectral_module(tmp_path)
    with torch.no_grad():  # the network as format 2 had it: no linear path
        for head in module.net.heads:
            head.linear.weight.zero_(), head.linear.bias.zero_()
    x = torch.rand(1, 6, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        expected = module.net(x)
    checkpoint = torch.load(write_checkpoint(module, tmp_path / "today.ckpt", imported_from={}), weights_only=False)
    checkpoint[FORMAT_KEY] = 2
    weights = checkpoint["state_dict"]
    for name in [name for name in weights if ".linear." in name]:
        del weights[name]
    torch.save(checkpoint, tmp_path / "format2.ckpt")
    loaded = load_model(tmp_path / "format2.ckpt").double()
    with torch.no_grad():
        assert torch.allclose(loaded.net(x), expected, rtol=0, atol=1e-12)


def test_the_first_training_batch_of_a_run_starts_the_network_once(tmp_path, monkeypatch):
    module = _spectral_module(tmp_path).float().train()
    calls = []
    monkeypatch.setattr(module.net, "start_from_data", lambda noisy: calls.append(noisy.shape) or True)
    batch = {"noisy": torch.rand(2, 6, 16, 16)}
    for batch_idx in range(3):
        module.training_step(batch, batch_idx)
    assert calls == [(2, 6, 16, 16)]
