"""Any-size inference: the tiled protocol equals the whole-image one, padding of odd sizes stays
blind, R3 is reproducible, and the settings are checked and read from older checkpoints."""

from __future__ import annotations

import pytest
import torch

from denoise.errors import ConfigError
from denoise.nets.blindness import input_gradients_at
from denoise.ops.inference import InferenceSettings, blind_spot_denoise, pad_for_pd
from tests.conftest import build_net


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
    net = build_net("tbsn_small", dtype=torch.float64)
    x = torch.rand(1, 3, 33, 35, dtype=torch.float64)
    settings = InferenceSettings(pd_factor=2, tile_size=0)
    pixels = [(32, 34), (32, 10), (10, 34)]
    grads = input_gradients_at(lambda t: blind_spot_denoise(net, t, settings), x, pixels)
    for (row, col), grad in zip(pixels, grads):
        assert grad[:, row, col].abs().max() == 0
        assert grad.abs().sum() > 0


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
        {"smooth_chroma": "yes"},
        {"nonlocal_blend": 1.5},
        {"nonlocal_blend": True},
        {"edge_wiener_passes": -1},
        {"edge_wiener_passes": 1.5},
        {"edge_wiener_passes": True},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            InferenceSettings(**bad)


@pytest.mark.parametrize("ensemble", ["none", "protocol"])
def test_detail_restoration_runs_once_on_the_protocols_result(dbsn, ensemble):
    from denoise.ops.detail import restore_detail
    from denoise.ops.inference import single_pass_denoise

    x = torch.rand(1, 3, 40, 36)
    plain = InferenceSettings(pd_factor=2, r3_passes=1, ensemble=ensemble, tile_size=0)
    restored = InferenceSettings(pd_factor=2, r3_passes=1, ensemble=ensemble, tile_size=0, restore_detail=True)
    with torch.no_grad():
        for protocol in (blind_spot_denoise, single_pass_denoise):
            expected = restore_detail(x, protocol(dbsn, x, plain))
            assert torch.equal(protocol(dbsn, x, restored), expected)
            assert not torch.equal(expected, protocol(dbsn, x, plain))


def test_chroma_smoothing_runs_on_the_protocols_result_before_detail_restoration(dbsn):
    from denoise.ops.chroma import smooth_chroma
    from denoise.ops.detail import restore_detail
    from denoise.ops.inference import single_pass_denoise

    x = torch.rand(1, 3, 40, 36)
    plain = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0)
    chroma = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0, smooth_chroma=True)
    both = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0, smooth_chroma=True, restore_detail=True)
    with torch.no_grad():
        for protocol in (blind_spot_denoise, single_pass_denoise):
            estimate = protocol(dbsn, x, plain)
            assert torch.equal(protocol(dbsn, x, chroma), smooth_chroma(estimate))
            assert torch.equal(protocol(dbsn, x, both), restore_detail(x, smooth_chroma(estimate)))
            assert not torch.equal(smooth_chroma(estimate), estimate)


def test_the_nonlocal_blend_runs_last_on_what_detail_restoration_gave(dbsn):
    from denoise.ops.chroma import smooth_chroma
    from denoise.ops.detail import restore_detail
    from denoise.ops.inference import single_pass_denoise
    from denoise.ops.nonlocal_means import blend_nonlocal

    x = torch.rand(1, 3, 40, 36)
    plain = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0)
    recipe = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0, smooth_chroma=True, restore_detail=True,
                               nonlocal_blend=0.3)
    with torch.no_grad():
        for protocol in (blind_spot_denoise, single_pass_denoise):
            finished = restore_detail(x, smooth_chroma(protocol(dbsn, x, plain)))
            assert torch.equal(protocol(dbsn, x, recipe), blend_nonlocal(x, finished, 0.3))
            assert not torch.equal(blend_nonlocal(x, finished, 0.3), finished)


def test_the_edge_wiener_passes_run_last_each_on_what_the_one_before_gave(dbsn):
    from denoise.ops.chroma import smooth_chroma
    from denoise.ops.collaborative_wiener import sharpen_edges
    from denoise.ops.detail import restore_detail
    from denoise.ops.inference import single_pass_denoise
    from denoise.ops.nonlocal_means import blend_nonlocal

    x = torch.rand(1, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    plain = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0)
    recipe = InferenceSettings(pd_factor=2, r3_passes=1, tile_size=0, smooth_chroma=True, restore_detail=True,
                               nonlocal_blend=0.3, edge_wiener_passes=2)
    with torch.no_grad():
        for protocol in (blind_spot_denoise, single_pass_denoise):
            blended = blend_nonlocal(x, restore_detail(x, smooth_chroma(protocol(dbsn, x, plain))), 0.3)
            once = sharpen_edges(x, blended)
            assert torch.equal(protocol(dbsn, x, recipe), sharpen_edges(x, once))
            assert not torch.equal(once, blended) and not torch.equal(sharpen_edges(x, once), once)
