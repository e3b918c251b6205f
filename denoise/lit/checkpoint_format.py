"""The version of this project's checkpoint contents, and the upgrade of older checkpoints.

Format 1 (no ``denoise_format`` key) stored M-WSA's relative-position tables in an earlier
convention (row ``offset + 11``, unscaled q); format 2 stores them as the official TBSN code
does. Loading a format-1 checkpoint converts its tables, so it computes exactly what it computed
when it was written, instead of loading silently into a network that reads them differently.
Format 3 adds the hyperspectral network's linear path (``SpectralBlindSpotNet``); a format-2
checkpoint of that network gets a zero linear path, which is the function it computed.

Network configs (the ``net`` / ``student`` hyper-parameters) of earlier versions may use a key
renamed since (``in_ch``, now ``in_channels``): :func:`upgrade_network_config` gives them the new
names before the network is built from them. Earlier checkpoints also kept the data position
(the generator states of a run) as ``checkpoint["rng_states"]``; it is now the datamodule's own
entry, which Lightning keeps under the datamodule's class name and hands back to it on resume.
"""

from __future__ import annotations

import re

import torch

CHECKPOINT_FORMAT = 3
FORMAT_KEY = "denoise_format"
# Where a checkpoint holds network weights: the model's (averaged, with EMA) and EMA's raw ones.
WEIGHT_ENTRIES = ("state_dict", "current_model_state")
# M-WSA's relative-position tables (denoise.nn.window_attention.MaskedWindowAttention's parameters).
RELATIVE_TABLE_NAMES = ("rel_height", "rel_width")
# SpectralBlindSpotNet's head MLP input layer, which reads 2 x bands channels (format 2 and later).
SPECTRAL_HEAD_INPUT = re.compile(r"^(?P<net>(?:.*\.)?)heads\.(?P<head>\d+)\.mlp\.0\.weight$")
# Network config keys renamed since: earlier name -> name now.
RENAMED_NETWORK_KEYS = {"in_ch": "in_channels"}


def mark_format(checkpoint: dict) -> None:
    checkpoint[FORMAT_KEY] = CHECKPOINT_FORMAT


def upgrade_checkpoint(checkpoint: dict, datamodule_key: str | None = None) -> None:
    """Bring ``checkpoint`` (in place) to :data:`CHECKPOINT_FORMAT`; ``datamodule_key``: the entry
    of the datamodule the checkpoint is resumed with, where an earlier data position moves."""
    if checkpoint.get(FORMAT_KEY, 1) < 2:
        for entry in WEIGHT_ENTRIES:
            weights = checkpoint.get(entry)
            if isinstance(weights, dict):
                weights.update(_converted_tables(weights))
    if checkpoint.get(FORMAT_KEY, 1) < 3:
        for entry in WEIGHT_ENTRIES:
            weights = checkpoint.get(entry)
            if isinstance(weights, dict):
                weights.update(_spectral_paths_added(weights))
    if datamodule_key is not None and "rng_states" in checkpoint and datamodule_key not in checkpoint:
        checkpoint[datamodule_key] = {"rng_states": checkpoint.pop("rng_states")}
    mark_format(checkpoint)


def upgrade_network_config(config: dict) -> dict:
    """``config`` with every key of :data:`RENAMED_NETWORK_KEYS` under its name now."""
    return {RENAMED_NETWORK_KEYS.get(key, key): value for key, value in config.items()}


def _converted_tables(weights: dict) -> dict[str, torch.Tensor]:
    return {
        name: relative_table_from_unscaled_convention(value)
        for name, value in weights.items()
        if name.rsplit(".", 1)[-1] in RELATIVE_TABLE_NAMES
    }


def _spectral_paths_added(weights: dict) -> dict[str, torch.Tensor]:
    """The linear paths (zero) of every SpectralBlindSpotNet in ``weights`` that has none: with
    them it computes what it computed without them."""
    added = {}
    for name, first_layer in weights.items():
        match = SPECTRAL_HEAD_INPUT.match(name)
        if match is None:
            continue
        net, head = match["net"], match["head"]
        bands = first_layer.shape[1] // 2
        group = weights[f"{net}heads.{head}.mlp.4.weight"].shape[0]
        prefix = f"{net}heads.{head}.linear."
        if prefix + "weight" not in weights:
            added[prefix + "weight"] = first_layer.new_zeros(group, bands, 1, 1)
            added[prefix + "bias"] = first_layer.new_zeros(group)
    return added


def relative_table_from_unscaled_convention(table: torch.Tensor) -> torch.Tensor:
    """A table saved under the earlier convention (row ``offset + 11``, unscaled q) in today's.

    Today's logit ``(q * d**-0.5) . new[offset + 13]`` equals the earlier ``q . old[offset + 11]``
    when ``new = roll(old, 2) * d**0.5``; the two rows that wrap around are unused in both.
    """
    return torch.roll(table, 2, dims=0) * table.shape[-1] ** 0.5
