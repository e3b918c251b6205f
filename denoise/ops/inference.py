"""Blind-spot inference on a whole image: PD, the network, PD back, optional R3."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from denoise.ops.pd import pd_down, pd_up
from denoise.ops.r3 import r3_refine


@dataclass(frozen=True)
class InferenceSettings:
    pd_factor: int = 2
    pd_layout: str = "batch"
    pd_pad: int = 0
    r3_passes: int = 0  # 0 disables R3; the TBSN / AP-BSN protocol uses 8
    r3_p: float = 0.16
    r3_seed: int = 0
    r3_pad: int = 2


def blind_spot_denoise(
    net: Callable[[torch.Tensor], torch.Tensor], noisy: torch.Tensor, settings: InferenceSettings
) -> torch.Tensor:
    """Denoise (B, C, H, W) ``noisy`` with a blind-spot network, any size."""
    size = noisy.shape[-2:]
    subs = pd_down(noisy, settings.pd_factor, settings.pd_layout, settings.pd_pad)
    first_pass = pd_up(net(subs), settings.pd_factor, size, settings.pd_layout, settings.pd_pad)
    if settings.r3_passes == 0:
        return first_pass
    return r3_refine(
        net, noisy, first_pass, settings.r3_passes, settings.r3_p, settings.r3_seed, settings.r3_pad
    )
