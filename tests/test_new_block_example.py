"""The worked example of docs/new_block.md: NAFNet's SCA block, its config, and a training run.

The config ``bsn_sca`` is also in the blind-spot test of every network config
(tests/test_blind_spot.py); here the block alone, its two forms, why its mean is per phase, and
``python train.py model/net=bsn_sca`` end to end.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from denoise.lit import load_model
from denoise.nets.blindness import input_gradients_at, probe_pixels
from denoise.nn import BLOCK_FORMS, BlockSpec, build_block
from denoise.nn.simplified_channel_attention import SimplifiedChannelAttention
from denoise.ops import phase_merge, phase_split
from tests.conftest import compose_net, run_entry
from tests.test_block_nets import FullResolution  # masked conv -> a block at full resolution -> 1x1 head

SPEC = BlockSpec(dim=8)  # the channels of FullResolution


def sca(spec: BlockSpec = SPEC) -> nn.Module:
    torch.manual_seed(0)
    return build_block("sca", spec).double()


def leak_at_probe_pixels(net: nn.Module, size: tuple[int, int] = (16, 20)) -> float:
    torch.manual_seed(1)
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    pixels = list(probe_pixels(*size).values())
    grads = input_gradients_at(net.double(), x, pixels)
    assert all(grad.abs().max() > 0 for grad in grads)  # the net reads its neighbours: the test can fail
    return max(grad[:, row, col].abs().max().item() for (row, col), grad in zip(pixels, grads))


def test_sca_is_registered_with_both_forms():
    assert BLOCK_FORMS["sca"] == ("phase", "literal")
    assert isinstance(build_block("sca", SPEC), SimplifiedChannelAttention)
    assert build_block("sca", replace(SPEC, form="literal")).phase_stride == SPEC.phase_stride


@pytest.mark.parametrize("size", [(9, 13), (5, 7), (1, 3)])
def test_block_keeps_shape_and_layout(size):
    block = sca().float()
    x = torch.randn(2, SPEC.dim, *size)
    assert block(x).shape == x.shape
    # The phase-split networks run channels-last; the block hands that layout back.
    y = block(x.contiguous(memory_format=torch.channels_last))
    assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, block(x))


def test_block_gradcheck_float64():
    x = torch.randn(1, SPEC.dim, 6, 8, dtype=torch.float64, requires_grad=True)
    for spec in (SPEC, replace(SPEC, form="literal")):
        assert torch.autograd.gradcheck(sca(spec), (x,), eps=1e-6, atol=1e-5)


def test_channel_weights_are_the_1x1_conv_of_the_mean_of_each_phase():
    block = sca(replace(SPEC, form="literal"))
    x = torch.randn(1, SPEC.dim, 6, 8, dtype=torch.float64)
    weights = block.channel_weights(x)
    for row, col in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        phase_mean = x[:, :, row::2, col::2].mean(dim=(-2, -1), keepdim=True)
        torch.testing.assert_close(weights[:, :, row::2, col::2], block.attention(phase_mean).expand(-1, -1, 3, 4))


def test_literal_block_on_full_map_equals_phase_block_on_sub_images():
    phase_block, literal_block = sca(), sca(replace(SPEC, form="literal"))
    literal_block.load_state_dict(phase_block.state_dict())
    x = torch.randn(2, SPEC.dim, 10, 14, dtype=torch.float64)
    torch.testing.assert_close(literal_block(x), phase_merge(phase_block(phase_split(x, 2)), 2))


def test_literal_block_at_full_resolution_is_exactly_blind():
    assert leak_at_probe_pixels(FullResolution(sca(replace(SPEC, form="literal")))) == 0.0


def test_one_mean_over_the_whole_map_leaks():
    """Why the mean is per phase: the same block pooling all phases at once reads x(p)."""
    block = sca(replace(SPEC, form="literal"))
    block.phase_stride = 1  # the taps stay dilated; only the mean now spans every phase
    assert leak_at_probe_pixels(FullResolution(block)) > 0.0


def test_config_builds_sca_blocks_and_its_forms_agree():
    torch.manual_seed(0)
    phase_net = instantiate(compose_net("bsn_sca")).double()
    literal_net = instantiate(compose_net("bsn_sca"), form="literal").double()
    literal_net.load_state_dict(phase_net.state_dict())
    assert sum(isinstance(m, SimplifiedChannelAttention) for m in phase_net.modules()) == 6  # one per block
    x = torch.rand(1, 3, 24, 30, dtype=torch.float64)  # padded inside to a multiple of 8
    torch.testing.assert_close(literal_net(x), phase_net(x))
    assert leak_at_probe_pixels(literal_net, (24, 30)) == 0.0


def test_train_py_trains_the_config_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = run_entry("train.py", ["model/net=bsn_sca", "debug=fast", "logger=csv"], run_dir, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Validation PSNR: noisy" in result.stdout + result.stderr
    net = load_model(run_dir / "checkpoints" / "last.ckpt").net
    assert any(isinstance(m, SimplifiedChannelAttention) for m in net.modules())
