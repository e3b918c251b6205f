"""The inference settings: their one definition, defaults and checks.

``InferenceSettings`` is what every module's ``denoise`` runs with. The configs take their keys and
defaults from it (the ``inference`` group's ``default`` and ``checkpoint`` nodes are built from it
in :mod:`denoise.cli.config_store`), so that a command line can set each key; checkpoints save it,
and the names of earlier checkpoints (``self_ensemble``) are mapped here, where the settings are
read (:func:`legacy_keys_mapped`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from denoise.errors import ConfigError
from denoise.ops.pd import LAYOUTS

# auto: bf16 where the device runs it natively, else 32, decided where the protocol runs
# (denoise/ops/precision.py): a checkpoint saved with auto picks again on every machine.
PRECISIONS = ("32", "bf16", "auto")
# none; pass: x8 around every network pass; protocol: x8 around the whole PD + R3 protocol.
ENSEMBLES = ("none", "pass", "protocol")
# The steps after the protocol (the photos recipe's; ops/inference.py's finish) and their values
# when off: what a network pass alone, an exported graph or a paper protocol runs with.
FINISHING_OFF = {"smooth_chroma": False, "restore_detail": False, "nonlocal_blend": 0.0, "edge_wiener_passes": 0}


@dataclass(frozen=True)
class InferenceSettings:
    """The inference protocol of a model: validation during training, eval.py and predict.py."""

    pd_factor: int = 2  # pixel-shuffle down-sampling factor (TBSN / AP-BSN: 2; 1 for i.i.d. noise)
    pd_layout: str = "batch"  # batch: sub-images stacked in the batch (TBSN); mosaic: AP-BSN tiles
    pd_pad: int = 0  # mosaic layout: zero padding per sub-image
    r3_passes: int = 0  # R3 refinement passes T (8 in the TBSN / AP-BSN protocol); 0 disables R3
    r3_p: float = 0.16  # fraction of PD-output values replaced by the noisy input per pass
    r3_seed: int = 0  # seed of the replacement masks (reproducible evaluation)
    r3_pad: int = 0  # reflect padding of each R3 pass: 0 (TBSN, unpadded), 2 (AP-BSN)
    # x8 flips / rotations (8x slower): none, pass (around every network pass) or protocol (around
    # the whole PD + R3 protocol, fresh R3 masks per transform: the official TBSN benchmark protocol).
    ensemble: str = "none"
    tile_size: int | None = 512  # pixels per tile side for large images; None or 0: whole image at once
    tile_overlap: int = 64  # overlap of neighbouring tiles; exact for receptive fields <= overlap // 4
    precision: str = "32"  # "32", "bf16" (autocast) or "auto"
    # After the protocol, fit the colour to the brightness locally: no colour blotches (ops/chroma.py),
    # then give back local means and smoothed-away texture (ops/detail.py); both: the photos recipe.
    smooth_chroma: bool = False
    restore_detail: bool = False
    # Last, the share of a non-local means estimate of the noisy image averaged in (ops/nonlocal_means.py;
    # 0: none; the photos recipe: 0.3).
    nonlocal_blend: float = 0.0
    # Then this many passes of collaborative Wiener filtering on the edges, which gives back the
    # sharpness a student smooths away (ops/collaborative_wiener.py; 0: none; the photos recipe: 1).
    edge_wiener_passes: int = 0

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
        for name in ("pd_pad", "r3_passes", "r3_pad", "tile_overlap", "edge_wiener_passes"):
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
            problems.append(f"precision={self.precision!r} (expected 32, bf16 or auto)")
        for name in ("smooth_chroma", "restore_detail"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name}={getattr(self, name)!r} (expected true or false)")
        if isinstance(self.nonlocal_blend, bool) or not isinstance(self.nonlocal_blend, (int, float)) \
                or not 0.0 <= self.nonlocal_blend <= 1.0:
            problems.append(f"nonlocal_blend={self.nonlocal_blend!r} (expected a fraction in [0, 1])")
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

    @classmethod
    def block_problems(cls, values, block: str) -> list[str]:
        """The problems :meth:`overridden` finds in a config ``block`` of these settings (its non-null
        keys), each line named with the block. The base has no tiling, so that a tile overlap given
        alone is checked later against the tile size it will be used with (a checkpoint's own)."""
        if values is None:
            return []
        if not isinstance(values, Mapping):
            return [f"{block}={values!r}: expected a mapping of inference settings"]
        try:
            cls(tile_size=None).overridden(values)
        except ConfigError as error:
            return [f"{block}: {str(error).removeprefix('inference settings: ')}"]
        return []


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
