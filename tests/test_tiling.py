"""Tiling: aligned, overlapping tiles blended back equal the network on the whole image."""

from __future__ import annotations

import itertools

import pytest
import torch

from denoise.ops.inference import network_alignment
from denoise.ops.tiling import blend_weights, tile_count, tile_spans, tiled_apply
from tests.conftest import build_net


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
    net = build_net("tbsn_small", block_layout=["ffn"])
    assert network_alignment(net) == 8
    x = torch.rand(1, 3, 452, 70)
    with torch.no_grad():
        whole, tiled = net(x), tiled_apply(net, x, tile=416, overlap=208, align=8)
    assert tile_count(452, 70, 416, 208, 8) == 2
    assert (tiled - whole).abs().max() < 1e-4
