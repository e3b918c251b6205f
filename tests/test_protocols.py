"""Named inference protocols: the x8 ensemble of the whole protocol, the benchmark protocol of a
TBSN checkpoint, results.json naming what ran, and old checkpoints' ``self_ensemble`` key."""

from __future__ import annotations

import dataclasses
import importlib.util
import json

import numpy as np
import pytest
import scipy.io
import torch

from denoise.cli.eval import evaluate
from denoise.lit import BlindSpotModule, load_model
from denoise.lit.importing import write_checkpoint
from denoise.nets import DBSN
from denoise.ops.ensemble import dihedral, dihedral_inverse
from denoise.ops.inference import InferenceSettings, blind_spot_denoise
from denoise.ops.protocols import PROTOCOLS, describe_protocol, finishing_steps, protocol_summary
from tests.conftest import REPO, compose_entry


def _model_config(arch: str, net: str) -> dict:
    spec = importlib.util.spec_from_file_location(
        "import_checkpoint", REPO / "scripts" / "import_checkpoint.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.model_config(arch, net)


def test_whole_protocol_ensemble_averages_the_protocol_with_fresh_masks_per_transform():
    torch.manual_seed(0)
    net = DBSN(channels=8, num_blocks=1).double().eval()
    x = torch.rand(1, 3, 18, 24, dtype=torch.float64) * 255
    settings = InferenceSettings(pd_factor=2, r3_passes=2, r3_seed=5, tile_size=0, ensemble="protocol")
    with torch.no_grad():
        ensembled = blind_spot_denoise(net, x, settings)
        once = dataclasses.replace(settings, ensemble="none")
        runs = [
            dihedral_inverse(
                blind_spot_denoise(net, dihedral(x, i), dataclasses.replace(once, r3_seed=5 + i)), i
            )
            for i in range(8)
        ]
        same_masks = [  # what the ensemble would be with one seed for every transform
            dihedral_inverse(blind_spot_denoise(net, dihedral(x, i), once), i) for i in range(8)
        ]
        per_pass = blind_spot_denoise(net, x, dataclasses.replace(settings, ensemble="pass"))
    assert (ensembled - torch.stack(runs).mean(0)).abs().max() < 1e-10
    assert (ensembled - torch.stack(same_masks).mean(0)).abs().max() > 1e-3
    assert (ensembled - per_pass).abs().max() > 1e-3


def test_protocols_are_named_field_by_field():
    tbsn = InferenceSettings(**PROTOCOLS["tbsn"])
    assert describe_protocol(tbsn)["name"] == "tbsn"
    assert "unpadded" in describe_protocol(tbsn)["r3"]
    benchmark = describe_protocol(dataclasses.replace(tbsn, ensemble="protocol"))
    assert benchmark["name"] == "tbsn_benchmark" and "whole protocol" in benchmark["ensemble"]
    apbsn = describe_protocol(InferenceSettings(**PROTOCOLS["apbsn"]))
    assert apbsn["name"] == "apbsn" and "reflect-padded by 2" in apbsn["r3"] and "mosaic" in apbsn["pd"]
    assert describe_protocol(dataclasses.replace(tbsn, r3_pad=2))["name"] == "custom"
    assert describe_protocol(tbsn)["finishing"] == "none"


def test_the_photos_recipe_steps_after_the_protocol_are_named_in_the_record_and_the_log_line():
    tbsn = InferenceSettings(**PROTOCOLS["tbsn"])
    finished = dataclasses.replace(tbsn, smooth_chroma=True, restore_detail=True, nonlocal_blend=0.3)
    described = describe_protocol(finished)
    assert described["name"] == "tbsn+finishing"  # no longer the paper's protocol
    assert described["finishing"].startswith("chroma smoothing, then detail restoration, then non-local means blend 0.3")
    assert protocol_summary(finished).endswith("chroma smoothing, detail restoration, non-local means blend 0.3")
    assert describe_protocol(dataclasses.replace(finished, r3_pad=2))["name"] == "custom"
    blend_only = dataclasses.replace(tbsn, nonlocal_blend=0.5)
    assert finishing_steps(blend_only) == ["non-local means blend 0.5"] and "chroma" not in protocol_summary(blend_only)


def test_tbsn_checkpoint_runs_the_official_benchmark_protocol_on_sidd_bench(tmp_path):
    module = BlindSpotModule(**_model_config("tbsn", "tbsn_small"))
    checkpoint = write_checkpoint(module, tmp_path / "tbsn.ckpt", {"file": "random weights"})
    noisy = np.random.default_rng(0).integers(0, 256, (1, 1, 64, 64, 3), dtype=np.uint8)
    scipy.io.savemat(tmp_path / "BenchmarkNoisyBlocksSrgb.mat", {"BenchmarkNoisyBlocksSrgb": noisy})
    common = [
        f"ckpt_path={checkpoint}",
        "data=sidd_bench",
        f"data.root={tmp_path}",
        "panels=0",
        "device=cpu",
        "inference.r3_passes=1",
    ]
    results = evaluate(compose_entry("eval", common, tmp_path / "bench"))
    assert results["inference"]["ensemble"] == "protocol"
    assert results["inference_protocol"]["name"] == "custom"  # R3 shortened to 1 pass for the test
    assert "whole protocol" in results["inference_protocol"]["ensemble"]
    assert "unpadded" in results["inference_protocol"]["r3"]
    written = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert written["inference_protocol"] == results["inference_protocol"]
    # The user's choice still wins.
    results = evaluate(compose_entry("eval", [*common, "inference.ensemble=none"], tmp_path / "plain"))
    assert results["inference"]["ensemble"] == "none"


def test_checkpoints_with_the_older_self_ensemble_key_still_load(tmp_path):
    config = _model_config("tbsn", "tbsn_small")
    inference = {key: value for key, value in config["inference"].items() if key != "ensemble"}
    for legacy, expected in ((True, "pass"), (False, "none")):
        module = BlindSpotModule(**{**config, "inference": {**inference, "self_ensemble": legacy}})
        path = write_checkpoint(module, tmp_path / f"old_{legacy}.ckpt", {})
        assert load_model(path).inference.ensemble == expected


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_apbsn_recipe_trains_on_the_mosaic_of_every_sub_image():
    """PD 5 with padding 2 in the mosaic layout (a 40x40 crop becomes a 60x60 mosaic)."""
    module = BlindSpotModule(**_model_config("apbsn", "dbsn_small"))
    assert module.net.form == "literal" and module.train_pd.keep == "all"
    loss = module.training_step({"noisy": torch.rand(2, 3, 40, 40)}, 0)
    loss.backward()
    assert torch.isfinite(loss) and module.net.stem[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("gcsa_mode", ["phase", "global"])
def test_paper_tbsn_protocol_in_float32_fast_form_equals_the_reference_form(gcsa_mode):
    """The whole TBSN protocol (PD 2 + R3 8, unpadded) in float32: the phase form (channels-last,
    per-entry CPU inference, fast kernels) against the literal form with the reference layers.
    Measured: 2.5e-7 of the output's range (phase Gram); the bound is 1e-5."""
    from denoise.nets import TBSN

    torch.manual_seed(0)
    fast, reference = TBSN(gcsa_mode=gcsa_mode).eval(), TBSN(form="literal", gcsa_mode=gcsa_mode).eval()
    reference.load_state_dict(fast.state_dict())
    settings = InferenceSettings(**PROTOCOLS["tbsn"], tile_size=None)
    noisy = torch.rand(1, 3, 64, 64)

    def on_0_255(net):
        def run(x):
            return net(x * 255) / 255

        run.size_multiple = net.size_multiple
        return run

    with torch.inference_mode():
        got = blind_spot_denoise(on_0_255(fast), noisy, settings)
        expected = blind_spot_denoise(on_0_255(reference), noisy, settings)
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()
