"""A network applied tile by tile: any image size, memory bounded by the tile size.

``tiled_apply(net, x, tile, overlap, align)`` cuts the spatial plane of ``x`` into tiles of
``tile`` pixels (the last one on each axis up to ``align - 1`` larger, so it ends exactly at the
border), runs ``net`` on each and blends the results. A network call holds about ``tile**2``
pixels: batch entries (the PD sub-images) go one call each when a whole entry is that large,
several per call when they are smaller, and a tile is never shared between batch entries.

Three rules make the result equal to ``net(x)`` rather than an approximation of it:

- **Aligned origins.** Every tile starts at a multiple of ``align``: the size multiple of the
  network (its window grid, its down-sampling) and the phase stride 2 of the blind-spot
  construction, so a tile sees every pixel at the same phase and window position as the whole
  image does. Interior tiles are multiples of ``align`` too, so the network pads nothing.
- **Context margins.** Where two tiles overlap, the outer quarter of the overlap on each side
  (``overlap // 4`` pixels from a tile's inner edge) is context only: its weight is 0. A
  network whose receptive field reaches at most that far therefore gives, wherever a tile's
  weight is not 0, exactly the value it gives on the whole image.
- **Normalised blending.** Between the margins the tiles are cross-faded with a raised cosine
  and the weights are normalised to sum to 1 at every pixel, so the seams are smooth and
  exact values stay exact.

Networks with a global operator (TBSN's G-CSA, MDTA, HCANet's channel attention compute their
statistics over the whole map) see statistics per tile instead: their tiled output differs
slightly from the whole-image output. Use no tiling where the image fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Progress = Callable[[int], None]


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def tile_spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """[start, stop) of the tiles along one axis of ``length`` pixels.

    Starts are multiples of ``align`` spread evenly; consecutive tiles overlap by at least
    ``overlap``; the last tile ends at ``length`` (and is up to ``align - 1`` longer than
    ``tile``). One tile when ``length`` is at most ``tile + align - 1``. ``tile`` is rounded up
    to a multiple of ``align`` and to at least ``overlap + align``.
    """
    if tile < 1 or overlap < 0 or align < 1:
        raise ValueError(
            f"tile_spans: need tile >= 1, overlap >= 0, align >= 1; got {tile}, {overlap}, {align}"
        )
    tile = round_up(max(tile, overlap + align), align)  # room for a stride of at least ``align``
    last = (max(length - tile, 0) // align) * align
    if last == 0:
        return [(0, length)]
    stride = max(align, ((tile - overlap) // align) * align)
    count = 1 + math.ceil(last / stride)
    # Aligned-down starts of an even spread: consecutive steps never exceed ``stride``.
    starts = sorted({(round(i * last / (count - 1)) // align) * align for i in range(count)})
    return [(start, start + tile) for start in starts[:-1]] + [(starts[-1], length)]


def _ramp(length: int) -> torch.Tensor:
    """Raised cosine rising over ``length`` pixels, strictly between 0 and 1."""
    t = (torch.arange(length, dtype=torch.float64) + 1) / (length + 1)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def blend_weights(spans: list[tuple[int, int]], length: int, overlap: int) -> list[torch.Tensor]:
    """Per tile, its 1-D weight profile over its own pixels; the profiles sum to 1 at every pixel."""
    margin = overlap // 4
    ramp = max(overlap - 2 * margin, 1)
    profiles = []
    for index, (start, stop) in enumerate(spans):
        profile = torch.ones(stop - start, dtype=torch.float64)
        rise = torch.cat([torch.zeros(margin, dtype=torch.float64), _ramp(ramp)])[: stop - start]
        if index > 0:  # an inner edge at the start
            profile[: len(rise)] = torch.minimum(profile[: len(rise)], rise)
        if index < len(spans) - 1:  # an inner edge at the stop
            fall = rise.flip(0)
            profile[len(profile) - len(fall) :] = torch.minimum(profile[len(profile) - len(fall) :], fall)
        profiles.append(profile)
    total = torch.zeros(length, dtype=torch.float64)
    for (start, stop), profile in zip(spans, profiles):
        total[start:stop] += profile
    if bool((total <= 0).any()):
        raise ValueError(f"blend_weights: the tiles leave pixels uncovered (overlap {overlap} too small)")
    return [profile / total[start:stop] for (start, stop), profile in zip(spans, profiles)]


def batch_chunk(batch: int, height: int, width: int, tile: int | None) -> int:
    """Batch entries per network call: as many (height, width) entries as fit in ``tile**2`` pixels (>= 1)."""
    if not tile:
        return batch
    return max(1, min(batch, (tile * tile) // max(height * width, 1)))


def tile_count(
    height: int, width: int, tile: int | None, overlap: int, align: int = 1, batch: int = 1
) -> int:
    """How many network calls :func:`tiled_apply` makes for a (batch, height, width) input."""
    if not tile:
        return 1
    rows, cols = tile_spans(height, tile, overlap, align), tile_spans(width, tile, overlap, align)
    calls = 0
    for top, bottom in rows:
        for left, right in cols:
            calls += math.ceil(batch / batch_chunk(batch, bottom - top, right - left, tile))
    return calls


def tiled_apply(
    net: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int | None,
    overlap: int = 0,
    align: int = 1,
    progress: Progress | None = None,
) -> torch.Tensor:
    """``net(x)`` computed tile by tile (see the module docstring); ``tile`` None or 0: one call.

    ``net`` maps (B, C, h, w) to (B, C', h, w) and must treat batch entries independently.
    ``progress`` is called with 1 after every network call.
    """
    height, width = x.shape[-2:]
    rows = tile_spans(height, tile, overlap, align) if tile else [(0, height)]
    cols = tile_spans(width, tile, overlap, align) if tile else [(0, width)]
    if len(rows) == 1 and len(cols) == 1:
        return _batched(net, x, batch_chunk(x.shape[0], height, width, tile), progress)
    row_weights, col_weights = blend_weights(rows, height, overlap), blend_weights(cols, width, overlap)
    out = None
    for (top, bottom), row_weight in zip(rows, row_weights):
        for (left, right), col_weight in zip(cols, col_weights):
            chunk = batch_chunk(x.shape[0], bottom - top, right - left, tile)
            piece = _batched(net, x[..., top:bottom, left:right], chunk, progress)
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], height, width)
            weight = torch.outer(row_weight, col_weight).to(device=piece.device, dtype=piece.dtype)
            out[..., top:bottom, left:right] += piece * weight
    return out


def _batched(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk: int, progress: Progress | None
) -> torch.Tensor:
    """``net(x)`` in batch chunks of ``chunk`` entries."""
    pieces = []
    for start in range(0, x.shape[0], chunk):
        pieces.append(net(x[start : start + chunk]))
        if progress is not None:
            progress(1)
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)
