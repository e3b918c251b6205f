"""The inference settings: their one definition, defaults and checks.

``InferenceSettings`` is what every module's ``denoise`` runs with (configs list the keys only so
that a command line can set them); checkpoints save it, and the names of earlier checkpoints
(``self_ensemble``) are mapped here, where the settings are read (:func:`legacy_keys_mapped`).
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
    precision: str = "32"  # "32", "bf16" (autocast) or "auto"
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
            problems.append(f"precision={self.precision!r} (expected 32, bf16 or auto)")
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
