"""R3: random-replacing refinement (AP-BSN).

The PD output is blind to noise correlations but loses fine detail. R3 re-runs the blind-spot
network at full resolution T times, each time on the PD output with a random fraction p of its
values replaced by the noisy input, and averages the T results. The replacement pattern comes
from a seeded generator so that evaluation is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from denoise.ops.padding import crop_to


def r3_refine(
    net: Callable[[torch.Tensor], torch.Tensor],
    noisy: torch.Tensor,
    first_pass: torch.Tensor,
    passes: int = 8,
    p: float = 0.16,
    seed: int = 0,
    pad: int = 2,
) -> torch.Tensor:
    """Average of ``passes`` full-resolution passes on partially re-noised ``first_pass``."""
    if passes < 1:
        raise ValueError(f"r3_refine: passes must be >= 1, got {passes}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"r3_refine: p must be in [0, 1], got {p}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    h, w = noisy.shape[-2:]
    total = torch.zeros_like(first_pass)
    for _ in range(passes):
        replace = torch.rand(noisy.shape, generator=generator).to(noisy.device) < p
        mixed = torch.where(replace, noisy, first_pass)
        if pad:
            mixed = F.pad(mixed, (pad, pad, pad, pad), mode="reflect")
        out = net(mixed)
        total = total + (crop_to(out[..., pad:, pad:], h, w) if pad else out)
    return total / passes
