"""Self-ensemble x8: the average of a network over the 8 flips and 90-degree rotations.

``self_ensemble(net, x) = mean_g g^-1(net(g(x)))`` over the dihedral group of the square.
Each transform g permutes pixels; the output at p of the g-th term is the network's output at
g(p) on g(x), which is blind to (g x)(g(p)) = x(p). So the ensemble of a blind-spot network is
exactly blind too (a float64 gradient test in tests/test_ensemble.py checks it). Rotations swap
height and width; the networks pad to their own size multiple, so any size works.

``protocol_self_ensemble(denoise, x)`` is the same average around a whole denoising protocol
(PD + R3, as the official TBSN benchmark code runs it); ``denoise(x, i)`` gets the transform's
index so that the protocol can draw its own random masks for each transform.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

TRANSFORMS = 8


def dihedral(x: torch.Tensor, index: int) -> torch.Tensor:
    """Transform ``index`` (0-7) of the spatial plane: ``index % 4`` quarter turns after a flip if >= 4."""
    if index >= 4:
        x = x.flip(-1)
    return torch.rot90(x, index % 4, dims=(-2, -1))


def dihedral_inverse(x: torch.Tensor, index: int) -> torch.Tensor:
    """Inverse of :func:`dihedral`."""
    x = torch.rot90(x, -(index % 4), dims=(-2, -1))
    return x.flip(-1) if index >= 4 else x


def self_ensemble(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, transforms: int = TRANSFORMS
) -> torch.Tensor:
    """Mean of ``dihedral_inverse(net(dihedral(x, i)), i)`` over the first ``transforms`` transforms."""
    return protocol_self_ensemble(lambda t, _: net(t), x, transforms)


def protocol_self_ensemble(
    denoise: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, transforms: int = TRANSFORMS
) -> torch.Tensor:
    """Mean of ``dihedral_inverse(denoise(dihedral(x, i), i), i)`` over the first ``transforms``."""
    if not 1 <= transforms <= TRANSFORMS:
        raise ValueError(f"self_ensemble: transforms must be in 1..{TRANSFORMS}, got {transforms}")
    total = None
    for index in range(transforms):
        out = dihedral_inverse(denoise(dihedral(x, index), index), index)
        total = out if total is None else total + out
    return total / transforms
