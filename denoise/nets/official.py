"""Weights of the official TBSN and AP-BSN codes, renamed for this project's networks.

The official codes save state dicts in three layouts: plain; ``{'model_weight': {'denoiser':
...}}``; and either with every key prefixed ``bsn.``. Besides weights they hold masks that this
project applies functionally or builds itself (``*.mask`` of the centre-masked convolutions,
TBSN's frozen ``*.fixed_pos_emb.attention_mask``): those are checked against the masks this
project uses and dropped. Everything else is renamed only; this project's TBSN relative tables
follow the official convention (``denoise.nn.window_attention``), so no value changes.

Anything unexpected is refused with one line naming the key: a key that is no weight of the
official network, a weight the target network lacks, a weight the file lacks, a shape that
does not fit (both shapes named), a mask that is not the one this project applies.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from einops import rearrange
from torch import nn

from denoise.errors import UserInputError

ARCHITECTURES = ("tbsn", "apbsn")

_TBSN_STAGES = {
    "encoder_level1": "encoder1",
    "encoder_level2": "encoder2",
    "latent": "latent",
    "decoder_level2": "decoder2",
    "decoder_level1": "decoder1",
    "refinement": "refinement",
}
# Sub-blocks of an official transformer block -> this project's ``layers.K``.
_TBSN_LAYERS = {"channel_attn": "0", "channel_ffn": "1", "spatial_attn": "2", "spatial_ffn": "3"}
_TBSN_FFN_CONVS = {"project_in": "conv_in", "project_out": "conv_out"}
_TBSN_RESAMPLING = {
    "down1_2.body.0": "down1.reduce",
    "down2_3.body.0": "down2.reduce",
    "up3_2.body.0": "up2.expand",
    "up2_1.body.0": "up1.expand",
    "reduce_chan_level2": "reduce2",
}

CONV_MASK = "conv mask"
ATTENTION_MASK = "attention mask"


class OfficialWeightsError(UserInputError):
    """An official checkpoint this importer does not recognise (the message names the key)."""


def official_state_dict(checkpoint: object, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside any layout the official codes save, with the ``bsn.`` prefix removed."""
    state = checkpoint
    if isinstance(state, Mapping) and "model_weight" in state:
        weights = state["model_weight"]
        if not isinstance(weights, Mapping) or "denoiser" not in weights:
            found = sorted(weights) if isinstance(weights, Mapping) else type(weights).__name__
            raise OfficialWeightsError(f"{source}: 'model_weight' holds {found}; expected a 'denoiser' entry")
        state = weights["denoiser"]
    if not isinstance(state, Mapping) or not state:
        raise OfficialWeightsError(
            f"{source}: not an official checkpoint (expected a state dict, "
            f"or {{'model_weight': {{'denoiser': state dict}}}})"
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise OfficialWeightsError(
                f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor; expected a state dict"
            )
    prefixed = [key.startswith("bsn.") for key in state]
    if any(prefixed) and not all(prefixed):
        odd = next(key for key in state if not key.startswith("bsn."))
        raise OfficialWeightsError(f"{source}: key {odd!r} lacks the 'bsn.' prefix the other keys have")
    return {key.removeprefix("bsn."): value for key, value in state.items()}


def tbsn_name(key: str) -> str | None:
    """This project's TBSN name of an official TBSN key, ``CONV_MASK`` / ``ATTENTION_MASK`` for the
    masks, None for a key the official TBSN does not have."""
    if key == "patch_embed.proj.mask":
        return CONV_MASK
    if key in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
        return f"branch.embed.{key.rsplit('.', 1)[1]}"
    if key in ("output.weight", "output.bias"):
        return f"head.{key.rsplit('.', 1)[1]}"
    for official, ours in _TBSN_RESAMPLING.items():
        if key in (f"{official}.weight", f"{official}.bias"):
            return f"branch.body.{ours}.{key.rsplit('.', 1)[1]}"
    match = re.fullmatch(r"(\w+?)\.(\d+)\.(.+)", key)
    if match is None or match[1] not in _TBSN_STAGES:
        return None
    stage, index, rest = _TBSN_STAGES[match[1]], match[2], match[3]
    block = f"branch.body.{stage}.{index}"
    if re.fullmatch(r"norm[1-4]\.body\.weight", rest):
        return f"{block}.norms.{int(rest[4]) - 1}.weight"
    if rest == "spatial_attn.fixed_pos_emb.attention_mask":
        return ATTENTION_MASK
    part, _, leaf = rest.partition(".")
    if part not in _TBSN_LAYERS:
        return None
    if part == "spatial_attn":
        leaf = leaf.removeprefix("rel_pos_emb.") if leaf.startswith("rel_pos_emb.rel_") else leaf
    elif part in ("channel_ffn", "spatial_ffn"):
        conv, _, param = leaf.partition(".")
        leaf = f"{_TBSN_FFN_CONVS.get(conv, conv)}.{param}"
    return f"{block}.layers.{_TBSN_LAYERS[part]}.{leaf}"


def dbsn_name(key: str) -> str | None:
    """This project's DBSN name of an official AP-BSN DBSNl key (``bsn.`` removed), ``CONV_MASK``
    for the masks, None for a key the official DBSNl does not have."""
    if match := re.fullmatch(r"head\.0\.(weight|bias)", key):
        return f"stem.0.{match[1]}"
    if match := re.fullmatch(r"tail\.(\d+)\.(weight|bias)", key):
        return key
    match = re.fullmatch(r"branch(\d+)\.body\.(\d+)\.(.+)", key)
    if match is None or int(match[1]) < 1:
        return None
    branch, layer, rest = int(match[1]) - 1, int(match[2]), match[3]
    if layer == 0:  # the centre-masked convolution
        return CONV_MASK if rest == "mask" else f"branches.{branch}.embed.{rest}"
    # Official body = [masked conv, ReLU, ...]; this project's body starts after the masked conv.
    inner = re.fullmatch(r"body\.([02])\.(weight|bias)", rest)
    if inner:  # a dilated residual block: body.0 the dilated conv, body.2 the 1x1 mix
        return f"branches.{branch}.body.{layer - 1}.{'conv' if inner[1] == '0' else 'mix'}.{inner[2]}"
    return f"branches.{branch}.body.{layer - 1}.{rest}"


NAMERS: dict[str, Callable[[str], str | None]] = {"tbsn": tbsn_name, "apbsn": dbsn_name}


def _check_conv_mask(key: str, mask: torch.Tensor, source: str) -> None:
    """An official conv mask must be ones with the centre tap zero (the only mask applied here)."""
    expected = torch.ones_like(mask)
    if mask.dim() == 4:
        expected[..., mask.shape[-2] // 2, mask.shape[-1] // 2] = 0
    if mask.dim() != 4 or not torch.equal(mask, expected):
        raise OfficialWeightsError(
            f"{source}: {key} is not a centre mask (ones with the centre tap zero) of shape "
            f"{tuple(mask.shape)}; this importer knows only that mask"
        )


def even_offset_mask(window: int, key_window: int) -> torch.Tensor:
    """The official 0/-inf mask of one M-WSA window: (window^2, key_window^2), keys at even offsets."""
    halo = (key_window - window) // 2
    offset = torch.arange(key_window)[None, :] - halo - torch.arange(window)[:, None]
    off_phase = offset % 2 != 0
    blocked = off_phase[:, None, :, None] | off_phase[None, :, None, :]
    mask = torch.zeros(blocked.shape, dtype=torch.float64).masked_fill(blocked, float("-inf"))
    return rearrange(mask, "qy qx ky kx -> (qy qx) (ky kx)")


def _check_attention_mask(key: str, mask: torch.Tensor, source: str) -> None:
    window, key_window = round(mask.shape[-2] ** 0.5), round(mask.shape[-1] ** 0.5)
    fits = (
        mask.dim() == 3
        and mask.shape[0] == 1
        and window**2 == mask.shape[-2]
        and key_window**2 == mask.shape[-1]
    )
    if not fits or not torch.equal(mask[0].double(), even_offset_mask(window, key_window)):
        raise OfficialWeightsError(
            f"{source}: {key} (shape {tuple(mask.shape)}) is not the even-offset window mask this project "
            f"builds (1, window^2, key_window^2)"
        )


def convert_official(
    state: Mapping[str, torch.Tensor], arch: str, target: nn.Module, source: str, target_name: str
) -> dict[str, torch.Tensor]:
    """``state`` (an official state dict, prefix removed) as a state dict of ``target``.

    ``target_name`` names the target network in messages (its config, e.g. ``tbsn``).
    """
    if arch not in NAMERS:
        raise OfficialWeightsError(f"arch={arch!r}: expected one of {', '.join(ARCHITECTURES)}")
    name_of, expected = NAMERS[arch], target.state_dict()
    converted: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        ours = name_of(key)
        if ours is None:
            raise OfficialWeightsError(
                f"{source}: unknown key {key!r} (not a weight of an official {arch} network)"
            )
        if ours == CONV_MASK:
            _check_conv_mask(key, value, source)
            continue
        if ours == ATTENTION_MASK:
            _check_attention_mask(key, value, source)
            continue
        if ours not in expected:
            raise OfficialWeightsError(
                f"{source}: key {key!r} (here {ours!r}) is not a weight of {target_name}; "
                f"is the checkpoint another configuration (--net)?"
            )
        if tuple(value.shape) != tuple(expected[ours].shape):
            raise OfficialWeightsError(
                f"{source}: key {key!r} has shape {tuple(value.shape)} but {target_name} needs "
                f"{tuple(expected[ours].shape)} for {ours!r}; is the checkpoint another configuration "
                f"(--net)?"
            )
        converted[ours] = value.detach().to(expected[ours].dtype)
    missing = [key for key in expected if key not in converted]
    if missing:
        raise OfficialWeightsError(
            f"{source}: no weight for {missing[0]!r} of {target_name} ({len(missing)} of {len(expected)} "
            f"missing); is the checkpoint another configuration (--net)?"
        )
    return converted
