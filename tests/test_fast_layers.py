"""The fast layers compute the reference layers' function with the reference layers' parameters."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from denoise.nets import TBSN
from denoise.nn import ChannelAttention, FastLayerNorm2d, LayerNorm2d, PointwiseConv2d, use_fast_layers


@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_conv_equals_the_1x1_conv_forward_and_backward(bias):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 5, 1, bias=bias).double()
    fast = use_fast_layers(nn.Sequential(nn.Conv2d(6, 5, 1, bias=bias))).double()[0]
    fast.load_state_dict(reference.state_dict())
    assert isinstance(fast, PointwiseConv2d)
    # A non-contiguous input, as after a channel slice.
    x = torch.randn(2, 9, 7, 5, dtype=torch.float64)[:, 1:7].requires_grad_()
    expected, got = reference(x), fast(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    grads = [torch.autograd.grad(out.square().sum(), [x, layer.weight]) for out, layer in
             ((expected, reference), (got, fast))]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_only_plain_pointwise_convs_are_swapped():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 4, 1, stride=2))
    use_fast_layers(model)
    assert all(type(layer) is nn.Conv2d for layer in model)


@pytest.mark.parametrize("bias", [False, True])
def test_fast_layer_norm_equals_the_reference(bias):
    torch.manual_seed(0)
    reference = LayerNorm2d(8, bias=bias).double()
    nn.init.normal_(reference.weight)
    if bias:
        nn.init.normal_(reference.bias)
    fast = FastLayerNorm2d(8, bias=bias).double()
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    assert torch.allclose(fast(x), reference(x), rtol=0, atol=1e-12)


def test_fast_layer_norm_keeps_float32_accuracy_for_features_with_a_large_mean():
    # E[x^2] - E[x]^2 would lose every significant bit here (mean 1e4, std 1); centring first does not.
    torch.manual_seed(0)
    x = 1e4 + torch.randn(1, 16, 8, 8)
    exact = LayerNorm2d(16).double()(x.double())
    assert (FastLayerNorm2d(16)(x).double() - exact).abs().max() < 1e-2 * exact.abs().max()
    assert (LayerNorm2d(16)(x).double() - exact).abs().max() < 1e-2 * exact.abs().max()


def test_the_phase_form_uses_the_fast_layers_and_the_literal_form_the_reference():
    phase, literal = TBSN(dim=8, num_blocks=(1, 1, 1), num_refinement_blocks=1), TBSN(
        dim=8, num_blocks=(1, 1, 1), num_refinement_blocks=1, form="literal"
    )
    fast = {PointwiseConv2d, FastLayerNorm2d}
    assert fast <= {type(layer) for layer in phase.modules()}
    assert not fast & {type(layer) for layer in literal.modules()}
    assert phase.state_dict().keys() == literal.state_dict().keys()


def test_channel_attention_cosines_equal_the_normalised_gram_matrix():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 4, 50, dtype=torch.float64), torch.randn(2, 3, 4, 50, dtype=torch.float64)
    q[0, 0, 1] = 0  # an all-zero row: both forms clamp its norm at 1e-12 and give cosines of 0
    attention = ChannelAttention(12, heads=3)
    expected = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    assert torch.allclose(attention.cosine_similarity(q, k), expected, rtol=0, atol=1e-12)
    literal = ChannelAttention(12, heads=3, form="literal")
    assert torch.equal(literal.cosine_similarity(q, k), expected)
