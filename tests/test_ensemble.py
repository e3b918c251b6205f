"""Self-ensemble x8: the dihedral transforms invert, and the ensemble of a blind-spot network is
still exactly blind."""

from __future__ import annotations

import torch

from denoise.nets.blindness import input_gradients_at, probe_pixels
from denoise.ops.ensemble import dihedral, dihedral_inverse, self_ensemble
from tests.conftest import build_net


def test_self_ensemble_of_a_blind_spot_network_is_exactly_blind():
    net = build_net("tbsn_small", dtype=torch.float64)
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    pixels = list(probe_pixels(32, 32).values())
    grads = input_gradients_at(lambda t: self_ensemble(net, t), x, pixels)
    for (row, col), grad in zip(pixels, grads):
        assert grad[:, row, col].abs().max() == 0
        assert grad.abs().sum() > 0


def test_dihedral_transforms_invert_and_ensemble_of_identity_is_identity():
    x = torch.rand(2, 3, 5, 7)
    for index in range(8):
        assert torch.equal(dihedral_inverse(dihedral(x, index), index), x)
    assert len({tuple(dihedral(x, i).flatten().tolist()) for i in range(8)}) == 8
    assert torch.allclose(self_ensemble(lambda t: t, x), x)
