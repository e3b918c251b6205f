"""Every denoising module denoises through one signature: any size, the given settings, progress."""

from __future__ import annotations

import inspect

import pytest
import torch
from omegaconf import OmegaConf

from denoise.lit import BlindSpotModule, DenoisingModule, DistillationModule
from tests.conftest import compose_net

OPTIMIZER = {"_target_": "torch.optim.AdamW"}


def blind_spot_module() -> BlindSpotModule:
    return BlindSpotModule(net=OmegaConf.to_container(compose_net("dbsn_small")), optimizer=OPTIMIZER)


def distillation_module() -> DistillationModule:
    student = {"_target_": "denoise.nets.UNet", "dim": 8, "levels": 2}
    return DistillationModule(student=student, optimizer=OPTIMIZER)


@pytest.mark.parametrize("build", [blind_spot_module, distillation_module])
def test_every_module_denoises_with_one_signature_and_reports_progress(build):
    torch.manual_seed(0)
    module = build().eval()
    assert inspect.signature(type(module).denoise) == inspect.signature(DenoisingModule.denoise)
    assert module.size_multiple == module.net.size_multiple
    noisy = torch.rand(1, module.in_channels, 45, 70)
    progress = []
    tiled = module.inference.overridden({"tile_size": 32, "tile_overlap": 8})
    out = module.denoise(noisy, tiled, lambda done, total: progress.append((done, total)))
    assert out.shape == noisy.shape and torch.isfinite(out).all()
    assert len(progress) > 1 and progress[-1][0] == progress[-1][1]
    assert all(done <= total for done, total in progress)
    assert module.denoise(noisy).shape == noisy.shape  # the saved settings, no progress
