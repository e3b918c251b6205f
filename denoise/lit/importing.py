"""Checkpoints of this project made from the official TBSN and AP-BSN weights.

``import_official(path, arch, model_config)`` builds a ``BlindSpotModule`` from a model config (the
``model`` block of a recipe, so that its network, training settings and inference protocol are
the recipe's) and loads the renamed official weights into its network
(:mod:`denoise.nets.official`). ``write_checkpoint`` saves it the way training does, so
``eval.py``, ``predict.py`` and ``denoise.lit.load_model`` take it like any other checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import lightning
import torch

from denoise.lit.blind_spot import BlindSpotModule
from denoise.lit.checkpoint_format import CHECKPOINT_FORMAT, FORMAT_KEY
from denoise.lit.checkpointing import atomic_torch_save
from denoise.nets.official import OfficialWeightsError, convert_official, official_state_dict


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """The official state dict in ``path`` (any of the official layouts), tensors only."""
    path = Path(path)
    if not path.is_file():
        raise OfficialWeightsError(f"{path}: no such file; expected an official .pth checkpoint")
    try:
        # Official files hold tensors, numbers and dicts only: no code is unpickled.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged or foreign file
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise OfficialWeightsError(f"{path}: not a readable PyTorch checkpoint ({first})") from error
    return official_state_dict(checkpoint, str(path))


def import_official(path: str | Path, arch: str, model_config: dict, net_name: str) -> BlindSpotModule:
    """A ``BlindSpotModule`` of ``model_config`` holding the official weights of ``path``, in eval mode.

    The module takes the dtype of the official weights (float32 for released checkpoints), so the
    values are kept exactly. ``net_name`` names the network config in messages.
    """
    state = read_official(path)
    module = BlindSpotModule(**model_config)
    dtypes = {value.dtype for value in state.values() if value.is_floating_point()}
    if len(dtypes) == 1:
        module = module.to(dtypes.pop())
    module.net.load_state_dict(convert_official(state, arch, module.net, str(path), net_name))
    return module.eval()


def write_checkpoint(module: BlindSpotModule, path: str | Path, imported_from: dict) -> Path:
    """Save ``module`` as training would (weights, hyper-parameters, module class), atomically."""
    path = Path(path)
    checkpoint = {
        "state_dict": module.state_dict(),
        "hyper_parameters": dict(module.hparams),
        "denoise_module": f"{type(module).__module__}.{type(module).__qualname__}",
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        "imported_from": imported_from,
        FORMAT_KEY: CHECKPOINT_FORMAT,
    }
    atomic_torch_save(checkpoint, path)
    return path
