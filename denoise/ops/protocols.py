"""The published inference protocols by name, and a field-by-field account of any settings.

- ``tbsn``: the official TBSN code (validation): PD 2 with the sub-images stacked in the batch and
  no padding, then R3 with 8 passes of p = 0.16 on the unpadded image. Its benchmark code wraps
  that whole protocol in the x8 self-ensemble (``ensemble: protocol``).
- ``apbsn``: the official AP-BSN code: PD 2 in the mosaic layout with zero padding 2 around every
  sub-image, then R3 with 8 passes of p = 0.16, each pass on the image reflect-padded by 2.

Settings that match neither are ``custom``. The photos recipe's steps after the protocol (chroma
smoothing, detail restoration, the non-local means blend, the collaborative Wiener filter on
edges) are in no paper's protocol: a paper
protocol with them is named ``<name>+finishing``. ``describe_protocol`` is what ``eval.py`` writes
into ``results.json``, so a result says exactly what ran.
"""

from __future__ import annotations

from denoise.ops.settings import InferenceSettings

PROTOCOLS: dict[str, dict[str, object]] = {
    "tbsn": {"pd_factor": 2, "pd_layout": "batch", "pd_pad": 0, "r3_passes": 8, "r3_p": 0.16, "r3_pad": 0},
    "apbsn": {"pd_factor": 2, "pd_layout": "mosaic", "pd_pad": 2, "r3_passes": 8, "r3_p": 0.16, "r3_pad": 2},
}


def protocol_name(settings: InferenceSettings) -> str:
    """``tbsn`` or ``apbsn`` when the PD and R3 settings are that paper's, else ``custom``."""
    for name, values in PROTOCOLS.items():
        if all(getattr(settings, key) == value for key, value in values.items()):
            return name
    return "custom"


def describe_protocol(settings: InferenceSettings) -> dict[str, str]:
    """The protocol's name and one plain sentence per stage (PD, R3, ensemble, tiling, precision,
    finishing)."""
    if settings.pd_factor == 1:
        pd = "none (the network on the whole image)"
    elif settings.pd_layout == "batch":
        pd = f"factor {settings.pd_factor}, sub-images stacked in the batch, no padding"
    else:
        pd = f"factor {settings.pd_factor}, sub-images in a mosaic, each zero-padded by {settings.pd_pad}"
    if settings.r3_passes:
        where = f"reflect-padded by {settings.r3_pad}" if settings.r3_pad else "unpadded"
        r3 = (
            f"{settings.r3_passes} passes, p = {settings.r3_p}, masks from seed {settings.r3_seed}, "
            f"each pass on the {where} image"
        )
    else:
        r3 = "none"
    ensemble = {
        "none": "none",
        "pass": "x8 flips/rotations around every network pass",
        "protocol": (
            f"x8 flips/rotations around the whole protocol; transform i draws its R3 masks from seed "
            f"{settings.r3_seed} + i"
        ),
    }[settings.ensemble]
    tiling = (
        f"network passes in tiles of {settings.tile_size} px overlapping by {settings.tile_overlap}"
        if settings.tile_size
        else "whole image per network pass"
    )
    name = protocol_name(settings)
    if name == "tbsn" and settings.ensemble == "protocol":
        name = "tbsn_benchmark"
    elif name != "custom" and settings.ensemble != "none":
        name = f"{name}+ensemble_{settings.ensemble}"
    steps = finishing_steps(settings)
    if steps and name != "custom":
        name = f"{name}+finishing"
    return {
        "name": name,
        "pd": pd,
        "r3": r3,
        "ensemble": ensemble,
        "tiling": tiling,
        "precision": "bfloat16 autocast" if settings.precision == "bf16" else "float32",
        "finishing": ", then ".join(steps) + " (steps of the photos recipe, in no paper's protocol)" if steps else "none",
    }


def finishing_steps(settings: InferenceSettings) -> list[str]:
    """The steps after the protocol that ``settings`` ask for, in the order
    :func:`denoise.ops.inference.finish` runs them."""
    steps = []
    if settings.smooth_chroma:
        steps.append("chroma smoothing")
    if settings.restore_detail:
        steps.append("detail restoration")
    if settings.nonlocal_blend:
        steps.append(f"non-local means blend {settings.nonlocal_blend:g}")
    if settings.edge_wiener_passes:
        steps.append(f"collaborative Wiener on edges x{settings.edge_wiener_passes}")
    return steps


def protocol_summary(settings: InferenceSettings) -> str:
    """The settings in a few words, for a log line (``describe_protocol`` says it in full)."""
    parts = [f"PD {settings.pd_factor}"]
    if settings.pd_layout == "mosaic":
        parts[0] += f" (mosaic, pad {settings.pd_pad})"
    if settings.r3_passes:
        parts.append(f"R3 T={settings.r3_passes} p={settings.r3_p} seed={settings.r3_seed} pad={settings.r3_pad}")
    if settings.ensemble == "pass":
        parts.append("self-ensemble x8 of every network pass")
    elif settings.ensemble == "protocol":
        parts.append("self-ensemble x8 of the whole protocol")
    parts.append(f"tiles {settings.tile_size}/{settings.tile_overlap}" if settings.tile_size else "no tiling")
    parts.append("bf16" if settings.precision == "bf16" else "float32")
    return ", ".join(parts + finishing_steps(settings))
