"""Any-size inference: tiling equals the whole image, padding of odd sizes stays blind, R3 is
reproducible, and the self-ensemble of a blind-spot network is still exactly blind."""

from __future__ import annotations

import itertools

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from denoise.errors import ConfigError
from denoise.nets.blindness import input_gradients_at, probe_pixels
from denoise.ops.ensemble import dihedral, dihedral_inverse, self_ensemble
from denoise.ops.inference import InferenceSettings, blind_spot_denoise, network_alignment, pad_for_pd
from denoise.ops.tiling import blend_weights, tile_count, tile_spans, tiled_apply
from tests.conftest import CONFIGS, compose_net


def _net(name: str, dtype=torch.float32, **overrides) -> torch.nn.Module:
    cfg = compose_net(name)
    for key, value in overrides.items():
        cfg[key] = value
    torch.manual_seed(0)
    return instantiate(cfg).to(dtype).eval()


@pytest.fixture(scope="module")
def dbsn() -> torch.nn.Module:
    """A finite receptive field (radius 11: 5x5 masked conv + 3 blocks dilated by 3), phases 2 and 3."""
    return _net("dbsn_small")


@pytest.mark.parametrize(
    "length,tile,overlap,align",
    [
        (150, 96, 48, 6),
        (1000, 512, 64, 32),
        (517, 128, 32, 8),
        (100, 40, 16, 2),
        (96, 96, 16, 32),
        (33, 8, 4, 2),
    ],
)
def test_tile_spans_are_aligned_overlapping_and_cover(length, tile, overlap, align):
    spans = tile_spans(length, tile, overlap, align)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert all(start % align == 0 for start, _ in spans)
    for (start, stop), (next_start, _) in itertools.pairwise(spans):
        assert next_start > start and stop - next_start >= overlap
    weights = blend_weights(spans, length, overlap)
    total = torch.zeros(length, dtype=torch.float64)
    for (start, stop), weight in zip(spans, weights):
        total[start:stop] += weight
        if start > 0:  # context margin: no weight within overlap // 4 of an inner edge
            assert torch.all(weight[: overlap // 4] == 0)
    assert torch.allclose(total, torch.ones(length, dtype=torch.float64))


def test_small_inputs_are_one_tile():
    assert tile_spans(516, 512, 64, 32) == [(0, 516)]  # a 512 block with the R3 padding of 2
    assert tile_count(100, 60, None, 16, 2) == 1


def test_tiled_network_equals_whole_image(dbsn):
    x = torch.rand(1, 3, 120, 161)
    align = network_alignment(dbsn)
    assert align == 6
    with torch.no_grad():
        whole = dbsn(x)
        calls = []
        tiled = tiled_apply(dbsn, x, tile=96, overlap=48, align=align, progress=calls.append)
        misaligned = tiled_apply(dbsn, x, tile=96, overlap=48, align=2)
    assert len(calls) == tile_count(120, 161, 96, 48, align) == 2 * 3
    assert (tiled - whole).abs().max() < 1e-4
    assert (misaligned - whole).abs().max() > 1e-5  # origins off the phase-3 grid change the result


def test_large_batch_entries_go_one_call_each(dbsn):
    """PD sub-images as large as a tile are run one per call: memory stays at one tile."""
    x = torch.rand(4, 3, 40, 46)
    sizes = []

    def recording(t: torch.Tensor) -> torch.Tensor:
        sizes.append(tuple(t.shape))
        return dbsn(t)

    with torch.no_grad():
        out = tiled_apply(recording, x, tile=48, overlap=8, align=6)
        whole = dbsn(x)
    assert sizes == [(1, 3, 40, 46)] * 4 == [(1, 3, 40, 46)] * tile_count(40, 46, 48, 8, 6, batch=4)
    assert (out - whole).abs().max() < 1e-5
    sizes.clear()
    with torch.no_grad():
        tiled_apply(recording, x[..., :20, :20], tile=48, overlap=8, align=6)
    assert sizes == [(4, 3, 20, 20)]  # small entries share a call


def test_tiled_tbsn_equals_whole_image_with_aligned_origins():
    # TBSN without its global channel attention has a finite receptive field (radius 51 here);
    # tiles must start on its size multiple (8: two 2x down-samplings of the phase sub-images).
    net = _net("tbsn_small", block_layout=["ffn"])
    assert network_alignment(net) == 8
    x = torch.rand(1, 3, 452, 70)
    with torch.no_grad():
        whole, tiled = net(x), tiled_apply(net, x, tile=416, overlap=208, align=8)
    assert tile_count(452, 70, 416, 208, 8) == 2
    assert (tiled - whole).abs().max() < 1e-4


@pytest.mark.parametrize("ensemble", ["none", "pass", "protocol"])
def test_tiled_protocol_equals_whole_image_protocol(dbsn, ensemble):
    """PD 2 + R3 (seeded) [+ self-ensemble]: tiling the network passes changes nothing."""
    x = torch.rand(1, 3, 117, 75)  # odd sizes: PD padding, and network padding in every pass
    base = {"pd_factor": 2, "r3_passes": 2 if ensemble == "none" else 1, "r3_seed": 3, "ensemble": ensemble}
    with torch.no_grad():
        whole = blind_spot_denoise(dbsn, x, InferenceSettings(**base, tile_size=0))
        progress = []
        tiled = blind_spot_denoise(
            dbsn,
            x,
            InferenceSettings(**base, tile_size=96, tile_overlap=48),
            progress=lambda done, total: progress.append((done, total)),
        )
    assert tiled.shape == x.shape
    assert (tiled - whole).abs().max() < 1e-4
    assert progress[-1][0] == progress[-1][1] >= 3 * (1 if ensemble == "none" else 8)
    assert all(done <= total for done, total in progress)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_pd_padding_of_odd_sizes_never_copies_a_pixel_into_its_own_sub_image():
    x = torch.arange(7 * 5, dtype=torch.float64).reshape(1, 1, 7, 5)
    for factor in (2, 3, 4, 5):
        padded = pad_for_pd(x, factor)
        assert padded.shape[-2] % factor == 0 and padded.shape[-1] % factor == 0
        assert torch.equal(padded[..., :7, :5], x)
        rows, cols = padded.shape[-2:]
        for r in range(rows):
            for c in range(cols):
                if r >= 7 or c >= 5:  # a copy: its source lies in another sub-image
                    source = (x[0, 0] == padded[0, 0, r, c]).nonzero()[0].tolist()
                    assert (source[0] - r) % factor or (source[1] - c) % factor


def test_odd_sized_protocol_is_blind_at_the_border():
    """Through PD 2 with padding, the last row/column pixels are blind to their own value."""
    net = _net("tbsn_small", dtype=torch.float64)
    x = torch.rand(1, 3, 33, 35, dtype=torch.float64)
    settings = InferenceSettings(pd_factor=2, tile_size=0)
    pixels = [(32, 34), (32, 10), (10, 34)]
    grads = input_gradients_at(lambda t: blind_spot_denoise(net, t, settings), x, pixels)
    for (row, col), grad in zip(pixels, grads):
        assert grad[:, row, col].abs().max() == 0
        assert grad.abs().sum() > 0


def test_self_ensemble_of_a_blind_spot_network_is_exactly_blind():
    net = _net("tbsn_small", dtype=torch.float64)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    pixels = list(probe_pixels(32, 32).values())
    grads = input_gradients_at(lambda t: self_ensemble(net, t), x, pixels)
    for (row, col), grad in zip(pixels, grads):
        assert grad[:, row, col].abs().max() == 0
        assert grad.abs().sum() > 0


def test_dihedral_transforms_invert_and_ensemble_of_identity_is_identity():
    x = torch.rand(2, 3, 5, 7)
    for index in range(8):
        assert torch.equal(dihedral_inverse(dihedral(x, index), index), x)
    assert len({tuple(dihedral(x, i).flatten().tolist()) for i in range(8)}) == 8
    assert torch.allclose(self_ensemble(lambda t: t, x), x)


def test_r3_with_a_seed_is_reproducible(dbsn):
    x = torch.rand(1, 3, 40, 44)

    def run(seed: int) -> torch.Tensor:
        return blind_spot_denoise(dbsn, x, InferenceSettings(r3_passes=2, r3_seed=seed))

    with torch.no_grad():
        a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bf16_precision_runs_close_to_float32(dbsn):
    x = torch.rand(1, 3, 36, 36)
    with torch.no_grad():
        full = blind_spot_denoise(dbsn, x, InferenceSettings())
        half = blind_spot_denoise(dbsn, x, InferenceSettings(precision="bf16"))
    assert half.dtype == torch.float32
    assert (half - full).abs().max() < 0.05


def test_inference_settings_are_validated_and_old_checkpoints_still_load():
    saved = {
        "pd_factor": 2,
        "pd_layout": "batch",
        "pd_pad": 0,
        "r3_passes": 8,
        "r3_p": 0.16,
        "r3_seed": 0,
        "r3_pad": 2,
    }  # the inference block of a checkpoint written before the new keys
    old = InferenceSettings(**saved)
    assert old.tile_size == 512 and old.ensemble == "none" and old.precision == "32"
    # Checkpoints written before ``ensemble`` carry self_ensemble: true/false (x8 of every pass).
    assert InferenceSettings.from_config({**saved, "self_ensemble": True}).ensemble == "pass"
    assert InferenceSettings.from_config({**saved, "self_ensemble": False}).ensemble == "none"
    with pytest.raises(ConfigError, match="self_ensemble"):
        InferenceSettings.from_config({"self_ensemble": "yes"})
    assert InferenceSettings(precision=32).precision == "32"
    assert InferenceSettings(precision="bf16-mixed").precision == "bf16"
    for bad in (
        {"pd_factor": 0},
        {"r3_p": 1.5},
        {"precision": "fp8"},
        {"tile_size": 64, "tile_overlap": 40},
        {"pd_layout": "grid"},
        {"ensemble": "yes"},
        {"ensemble": True},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            InferenceSettings(**bad)


def test_the_inference_config_lists_exactly_the_settings_and_their_defaults():
    """InferenceSettings defines the defaults; the config only lists them for the command line."""
    listed = OmegaConf.to_container(OmegaConf.load(CONFIGS / "inference" / "default.yaml"))
    assert InferenceSettings.from_config(listed) == InferenceSettings()
    assert list(listed) == list(InferenceSettings.keys())
    overrides = OmegaConf.to_container(OmegaConf.load(CONFIGS / "inference" / "checkpoint.yaml"))
    assert overrides == dict.fromkeys(InferenceSettings.keys())
