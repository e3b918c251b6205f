"""Inference on an image of any size: what every denoising module's ``denoise`` runs.

``InferenceSettings`` is the one definition of the inference settings, their defaults and their
checks (configs list the keys only so that a command line can set them).

``blind_spot_denoise(net, noisy, settings)``, the protocol of a blind-spot network::

    noisy -> pad to a multiple of the PD factor (phase-safe) -> PD down (f) -> network pass
          -> PD up -> crop -> [R3: T network passes at full resolution on partly re-noised copies]

and ``single_pass_denoise(net, noisy, settings)``, the protocol of a non-blind network, is one
network pass on the whole image. Every *network pass* is ``net`` optionally wrapped, from the inside out, by

1. precision: float32, or bfloat16 autocast (``precision: bf16``), results back in float32;
2. tiling (:mod:`denoise.ops.tiling`): tiles of ``tile_size`` pixels overlapping by
   ``tile_overlap``, origins aligned to the network's size multiple and the phase stride 2;
3. self-ensemble x8 (:mod:`denoise.ops.ensemble`) with ``ensemble: pass``: flips and rotations
   of the whole pass input.

``restore_detail: true`` runs :func:`denoise.ops.detail.restore_detail` on the protocol's result
(after any ensemble): a step of the photos recipe, not of the papers' protocols.

``ensemble: protocol`` instead wraps the whole protocol (PD + R3) in the x8 self-ensemble, as
the official TBSN benchmark code does: transform i of the image runs the protocol with R3 seed
``r3_seed + i``, so each transform draws fresh masks and the result is still reproducible.

Why tile the network passes and not the whole protocol: PD and R3 are cheap whole-image tensor
operations (a reshape, a random mask, an average) whose cost is a few image-sized buffers; the
network is what needs memory. Running PD and R3 on the whole image and tiling only the network
keeps the R3 masks exactly those of the untiled run (drawn for the whole image from the seed),
so the tiled protocol equals the untiled one wherever the tiled network equals the network
(``tests/test_inference.py``). Every network call holds about ``tile_size**2`` pixels: the PD pass
runs its f*f sub-images one call each when they are that large (tiled when larger), several per
call when smaller, so memory is the same in every pass. Self-ensemble sits outside the tiling so
that each transformed image is tiled on its own aligned grid, which keeps it exact too.

Padding: the networks pad to their own size multiple inside (parity-preserving reflection). For
PD this function pads to a multiple of f itself with copies that land in a *different*
sub-image than their source (for f = 2: mirror including the edge pixel), so no sub-image
holds a pixel twice and the border pixels stay blind to their own noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from denoise.errors import ConfigError
from denoise.ops.detail import restore_detail
from denoise.ops.ensemble import TRANSFORMS, protocol_self_ensemble, self_ensemble
from denoise.ops.pd import LAYOUTS, pd_down, pd_up
from denoise.ops.r3 import r3_refine
from denoise.ops.tiling import tile_count, tiled_apply

PRECISIONS = ("32", "bf16")
# none; pass: x8 around every network pass; protocol: x8 around the whole PD + R3 protocol.
ENSEMBLES = ("none", "pass", "protocol")
Progress = Callable[[int, int], None]


@runtime_checkable
class SizedNetwork(Protocol):
    """A network of ``denoise.nets`` (or a module running one): it takes any size and pads to
    ``size_multiple`` inside, so tiles must start on that multiple to see what the whole image sees."""

    size_multiple: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


# A plain function of a tensor (no size multiple) is a network too: it takes any size as it is.
NetworkFunction = SizedNetwork | Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InferenceSettings:
    pd_factor: int = 2
    pd_layout: str = "batch"
    pd_pad: int = 0
    r3_passes: int = 0  # 0 disables R3; the TBSN / AP-BSN protocol uses 8
    r3_p: float = 0.16
    r3_seed: int = 0
    r3_pad: int = 0  # reflect padding of each R3 pass: 0 (TBSN, unpadded), 2 (AP-BSN)
    ensemble: str = "none"  # x8 flips / rotations: none, around every network pass, or the whole protocol
    tile_size: int | None = 512  # pixels per tile side (full-resolution passes); None or 0: whole image
    tile_overlap: int = 64  # overlap of neighbouring tiles; exact for receptive fields <= overlap // 4
    precision: str = "32"  # "32" or "bf16" (autocast)
    restore_detail: bool = False  # give back local means and texture after the protocol (ops/detail.py)

    def __post_init__(self):
        precision = str(self.precision).lower().removesuffix("-mixed").removesuffix("-true")
        object.__setattr__(
            self, "precision", {"32": "32", "bf16": "bf16", "bfloat16": "bf16"}.get(precision, precision)
        )
        problems = []
        if not _is_int(self.pd_factor) or self.pd_factor < 1:
            problems.append(f"pd_factor={self.pd_factor!r} (expected an integer >= 1)")
        if self.pd_layout not in LAYOUTS:
            problems.append(f"pd_layout={self.pd_layout!r} (expected one of {', '.join(LAYOUTS)})")
        for name in ("pd_pad", "r3_passes", "r3_pad", "tile_overlap"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                problems.append(f"{name}={value!r} (expected an integer >= 0)")
        if not _is_int(self.r3_seed):
            problems.append(f"r3_seed={self.r3_seed!r} (expected an integer)")
        if not isinstance(self.r3_p, (int, float)) or not 0.0 <= self.r3_p <= 1.0:
            problems.append(f"r3_p={self.r3_p!r} (expected a fraction in [0, 1])")
        if self.ensemble not in ENSEMBLES:
            problems.append(f"ensemble={self.ensemble!r} (expected one of {', '.join(ENSEMBLES)})")
        if self.tile_size is not None and (not _is_int(self.tile_size) or self.tile_size < 0):
            problems.append(f"tile_size={self.tile_size!r} (expected null, 0 (no tiling) or a pixel count)")
        elif self.tile_size and _is_int(self.tile_overlap) and 2 * self.tile_overlap > self.tile_size:
            problems.append(f"tile_overlap={self.tile_overlap} (at most half of tile_size={self.tile_size})")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} (expected 32 or bf16)")
        if not isinstance(self.restore_detail, bool):
            problems.append(f"restore_detail={self.restore_detail!r} (expected true or false)")
        if problems:
            raise ConfigError("inference settings: " + "; ".join(problems))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_config(cls, values: dict | None) -> InferenceSettings:
        """Settings from a config or checkpoint block, mapping the older ``self_ensemble`` key."""
        return cls(**legacy_keys_mapped(values or {}))

    def overridden(self, overrides: Mapping | None) -> InferenceSettings:
        """These settings with the non-null values of ``overrides`` (eval's and predict's
        ``inference`` block: null keeps the checkpoint's value); unknown keys are refused."""
        values = legacy_keys_mapped({key: value for key, value in (overrides or {}).items() if value is not None})
        unknown = sorted(set(values) - set(self.keys()))
        if unknown:
            raise ConfigError(
                f"inference.{unknown[0]} is not an inference setting; the settings are {', '.join(self.keys())}"
            )
        return replace(self, **values)


def legacy_keys_mapped(values: dict) -> dict:
    """``values`` with ``self_ensemble: true/false`` (checkpoints written before ``ensemble``)
    as ``ensemble: pass/none``: the older key meant x8 around every network pass."""
    values = dict(values)
    if "self_ensemble" in values:
        legacy = values.pop("self_ensemble")
        if legacy is not None:
            if not isinstance(legacy, bool):
                raise ConfigError(f"inference settings: self_ensemble={legacy!r} (expected true or false)")
            values.setdefault("ensemble", "pass" if legacy else "none")
    return values


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def network_alignment(net: NetworkFunction) -> int:
    """The multiple tile origins need: the network's ``size_multiple`` and the phase stride 2."""
    return math.lcm(net.size_multiple if isinstance(net, SizedNetwork) else 1, 2)


def pad_for_pd(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Pad bottom/right to a multiple of ``factor`` with copies that change sub-image.

    Padded row ``H - 1 + j`` copies row ``H - j`` (a mirror including the edge), whose distance
    ``2j - 1`` is not a multiple of ``factor`` (always so for factor 2), else row ``H - j - 1``.
    Plain reflection (distance 2j) puts a copy of a pixel into its own sub-image next to it,
    where a blind-spot network would read the pixel's own noise. Too small images: zeros.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % factor, (-width) % factor
    if pad_h == 0 and pad_w == 0:
        return x
    if height < pad_h + 2 or width < pad_w + 2:
        return F.pad(x, (0, pad_w, 0, pad_h))

    def sources(length: int, pad: int) -> list[int]:
        return [length - j if (2 * j - 1) % factor else length - j - 1 for j in range(1, pad + 1)]

    if pad_h:
        x = torch.cat([x, x[..., sources(height, pad_h), :]], dim=-2)
    if pad_w:
        x = torch.cat([x, x[..., :, sources(width, pad_w)]], dim=-1)
    return x


class NetworkPass:
    """One network pass of the protocol: precision, tiling and self-ensemble around ``net``."""

    def __init__(
        self,
        net: NetworkFunction,
        settings: InferenceSettings,
        tile: int | None,
        align: int,
        progress: Callable[[int], None] | None = None,
    ):
        self.net, self.settings, self.tile, self.align, self.progress = net, settings, tile, align, progress

    def _precise(self, x: torch.Tensor) -> torch.Tensor:
        if self.settings.precision == "bf16":
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                return self.net(x).float()
        return self.net(x)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        return tiled_apply(self._precise, x, self.tile, self.settings.tile_overlap, self.align, self.progress)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.settings.ensemble == "pass":
            return self_ensemble(self._tiled, x)
        return self._tiled(x)

    def calls(self, batch: int, height: int, width: int) -> int:
        """Network calls this pass makes on a (batch, C, height, width) input."""
        overlap = self.settings.tile_overlap
        per_transform = [tile_count(height, width, self.tile, overlap, self.align, batch)]
        if self.settings.ensemble == "pass":  # odd quarter turns swap height and width
            per_transform.append(tile_count(width, height, self.tile, overlap, self.align, batch))
            return TRANSFORMS // 2 * sum(per_transform)
        return per_transform[0]


def blind_spot_denoise(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None = None
) -> torch.Tensor:
    """Denoise (B, C, H, W) ``noisy`` with a blind-spot network, any size (see the module docstring).

    ``progress(done, total)`` is called after every network call (tile), if given.
    """
    if settings.restore_detail:
        return restore_detail(noisy, blind_spot_denoise(net, noisy, replace(settings, restore_detail=False), progress))
    if settings.ensemble == "protocol":
        return _whole_protocol_ensemble(net, noisy, settings, progress)
    height, width = noisy.shape[-2:]
    factor, align = settings.pd_factor, network_alignment(net)
    counter = _Counter(progress)
    padded = pad_for_pd(noisy, factor)
    subs = pd_down(padded, factor, settings.pd_layout, settings.pd_pad)
    network_pass = NetworkPass(net, settings, settings.tile_size or None, align, counter)
    pad, batch = settings.r3_pad, noisy.shape[0]
    counter.total = network_pass.calls(
        subs.shape[0], *subs.shape[-2:]
    ) + settings.r3_passes * network_pass.calls(batch, height + 2 * pad, width + 2 * pad)

    first_pass = pd_up(network_pass(subs), factor, padded.shape[-2:], settings.pd_layout, settings.pd_pad)
    first_pass = first_pass[..., :height, :width]
    if settings.r3_passes == 0:
        return first_pass
    return r3_refine(
        network_pass, noisy, first_pass, settings.r3_passes, settings.r3_p, settings.r3_seed, pad
    )


def single_pass_denoise(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None = None
) -> torch.Tensor:
    """Denoise (B, C, H, W) ``noisy`` with one pass of a non-blind network (no PD, no R3), any size.

    The whole protocol is that one pass, so ``ensemble: protocol`` is the ensemble of the pass.
    ``progress(done, total)`` is called after every network call (tile), if given.
    """
    if settings.restore_detail:
        return restore_detail(noisy, single_pass_denoise(net, noisy, replace(settings, restore_detail=False), progress))
    if settings.ensemble == "protocol":
        settings = replace(settings, ensemble="pass")
    counter = _Counter(progress)
    network_pass = NetworkPass(net, settings, settings.tile_size or None, network_alignment(net), counter)
    counter.total = network_pass.calls(noisy.shape[0], *noisy.shape[-2:])
    return network_pass(noisy)


def _whole_protocol_ensemble(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None
) -> torch.Tensor:
    """x8 self-ensemble of the whole protocol; transform i draws its R3 masks from ``r3_seed + i``."""
    once = replace(settings, ensemble="none")
    runs = _EnsembleProgress(progress, TRANSFORMS)

    def protocol(x: torch.Tensor, index: int) -> torch.Tensor:
        seeded = replace(once, r3_seed=settings.r3_seed + index)
        return blind_spot_denoise(net, x, seeded, runs.of_transform(index))

    return protocol_self_ensemble(protocol, noisy)


class _EnsembleProgress:
    """Progress over the transforms' runs: calls done so far, and the total the runs foresee."""

    def __init__(self, progress: Progress | None, transforms: int):
        self.progress, self.transforms, self.finished = progress, transforms, 0

    def of_transform(self, index: int) -> Progress | None:
        if self.progress is None:
            return None

        def report(done: int, total: int) -> None:
            self.progress(self.finished + done, self.finished + total * (self.transforms - index))
            if done == total:
                self.finished += done

        return report


class _Counter:
    def __init__(self, progress: Progress | None):
        self.progress, self.done, self.total = progress, 0, 0

    def __call__(self, steps: int) -> None:
        self.done += steps
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))
