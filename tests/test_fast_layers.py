"""The fast layers compute the reference layers' function with the reference layers' parameters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from denoise.nets import TBSN
from denoise.nn import (
    FastChannelAttention,
    FastLayerNorm2d,
    FastMaskedWindowAttention,
    LayerNorm2d,
    MaskedWindowAttention,
    PointwiseConv2d,
)
from tests.conftest import REPO


@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_conv_equals_the_1x1_conv_forward_and_backward(bias):
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 5, 1, bias=bias).double()
    fast = PointwiseConv2d(6, 5, 1, bias=bias).double()
    fast.load_state_dict(reference.state_dict())
    # A non-contiguous input, as after a channel slice.
    x = torch.randn(2, 9, 7, 5, dtype=torch.float64)[:, 1:7].requires_grad_()
    expected, got = reference(x), fast(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    grads = [torch.autograd.grad(out.square().sum(), [x, layer.weight]) for out, layer in
             ((expected, reference), (got, fast))]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("options", [{"kernel_size": 3, "padding": 1}, {"kernel_size": 1, "groups": 2},
                                     {"kernel_size": 1, "stride": 2}, {"kernel_size": 1, "padding": 1}])
def test_pointwise_conv_refuses_any_other_conv(options):
    with pytest.raises(ValueError, match="PointwiseConv2d is a 1x1, stride 1, unpadded, ungrouped conv"):
        PointwiseConv2d(4, 4, **options)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("bias", [False, True])
def test_fast_layer_norm_equals_the_reference_forward_and_backward(bias, layout):
    torch.manual_seed(0)
    reference = LayerNorm2d(8, bias=bias).double()
    nn.init.normal_(reference.weight)
    if bias:
        nn.init.normal_(reference.bias)
    fast = FastLayerNorm2d(8, bias=bias).double()
    fast.load_state_dict(reference.state_dict())
    # A mean far from zero exercises the centring in the hand-written backward.
    x = (3 + 2 * torch.randn(2, 8, 6, 5, dtype=torch.float64)).contiguous(memory_format=layout)
    x.requires_grad_()
    expected, got = reference(x), fast(x)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert got.is_contiguous(memory_format=layout)
    weight = torch.randn_like(expected)  # a loss that weighs every output differently
    grads = [torch.autograd.grad((out * weight).sum(), [x, *layer.parameters()]) for out, layer in
             ((expected, reference), (got, fast))]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


def test_fast_bias_free_norm_passes_gradcheck():
    fast = FastLayerNorm2d(5).double()
    x = (1 + torch.randn(2, 5, 3, 4, dtype=torch.float64)).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(5, dtype=torch.float64)

    def norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(fast, {"weight": weight}, (x,))

    assert torch.autograd.gradcheck(norm, (x.requires_grad_(), weight.requires_grad_()))


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


def test_fast_channel_attention_cosines_equal_the_normalised_gram_matrix():
    torch.manual_seed(0)
    q, k = torch.randn(2, 3, 4, 50, dtype=torch.float64), torch.randn(2, 3, 4, 50, dtype=torch.float64)
    q[0, 0, 1] = 0  # an all-zero row: both kernels clamp its norm at 1e-12 and give cosines of 0
    expected = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    assert torch.allclose(FastChannelAttention.cosine_similarity(q, k), expected, rtol=0, atol=1e-12)


CHANNELS_LAST = torch.channels_last


def test_pointwise_conv_on_a_channels_last_map_is_the_1x1_conv_and_stays_channels_last():
    torch.manual_seed(0)
    reference = nn.Conv2d(6, 5, 1).double()
    fast = PointwiseConv2d(6, 5, 1).double()
    fast.load_state_dict(reference.state_dict())
    x = torch.randn(2, 6, 7, 5, dtype=torch.float64)
    got = fast(x.contiguous(memory_format=CHANNELS_LAST))
    assert got.is_contiguous(memory_format=CHANNELS_LAST)
    assert torch.allclose(got, reference(x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("gram", ["phase", "global"])
@pytest.mark.parametrize("heads", [1, 3])
def test_phase_channel_attention_is_the_same_function_in_both_layouts_and_keeps_its_layout(gram, heads):
    torch.manual_seed(0)
    attention = FastChannelAttention(12, heads=heads, gram=gram).double()
    nn.init.normal_(attention.temperature)
    x = torch.randn(8, 12, 6, 10, dtype=torch.float64)
    # The definition: one Gram per phase entry, or per image (4 phase entries) with the global Gram.
    group = {"p": 1 if gram == "phase" else 4, "m": heads}
    q, k, v = (
        rearrange(t, "(b p) (m c) h w -> b m c (p h w)", **group)
        for t in attention.qkv_dwconv(attention.qkv(x)).chunk(3, dim=1)
    )
    cosines = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
    mixed = (cosines * attention.temperature).softmax(dim=-1) @ v
    expected = attention.project_out(rearrange(mixed, "b m c (p h w) -> (b p) (m c) h w", h=6, w=10, **group))
    weight = torch.randn_like(expected)
    expected_grads = torch.autograd.grad((expected * weight).sum(), list(attention.parameters()))
    for layout in (torch.contiguous_format, CHANNELS_LAST):
        x_in = x.contiguous(memory_format=layout).requires_grad_()
        got = attention(x_in)
        assert got.is_contiguous(memory_format=layout)
        assert torch.allclose(got, expected, rtol=0, atol=1e-12)
        grads = torch.autograd.grad((got * weight).sum(), [x_in, *attention.parameters()])
        for a, b in zip(expected_grads, grads[1:]):
            assert torch.allclose(a, b, rtol=0, atol=1e-10)
        if layout is CHANNELS_LAST:  # the gradient reaches the map in its own layout
            assert grads[0].is_contiguous(memory_format=CHANNELS_LAST)


def test_cosines_of_channels_last_views_pass_gradcheck():
    # (b, m, c, n) views of a map stored channels innermost, as G-CSA sees a channels-last map.
    q, k = (torch.randn(2, 2, 40, 3, dtype=torch.float64).transpose(-2, -1).requires_grad_() for _ in range(2))
    assert torch.autograd.gradcheck(FastChannelAttention.cosine_similarity, (q, k))


@pytest.mark.parametrize("layout", [torch.contiguous_format, CHANNELS_LAST])
def test_fast_window_attention_equals_the_reference_computation(layout):
    """Phase M-WSA's fast kernels (in-place relative logits; key windows copied from strided
    views, their gradient by ``F.fold``) against the reference (unfold, attention-sized bias,
    scaled_dot_product_attention): forward with and without gradients, and the gradients of
    input, relative tables and projections, on a map with border windows."""
    torch.manual_seed(0)
    reference = MaskedWindowAttention(12, heads=2, head_dim=6, window=8).double()
    attention = FastMaskedWindowAttention(12, heads=2, head_dim=6, window=8).double()
    attention.load_state_dict(reference.state_dict())
    x = torch.randn(2, 12, 8, 12, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    expected, got = reference(x), attention(x)
    assert got.is_contiguous(memory_format=layout)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(attention(x), expected, rtol=0, atol=1e-12)
    grads = []
    for out, layer in ((expected, reference), (got, attention)):
        weights = [x, layer.rel_height, layer.rel_width, layer.qkv.weight, layer.project_out.weight]
        grads.append(torch.autograd.grad(out.sin().sum(), weights))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("gcsa_mode", ["phase", "global"])
def test_cpu_inference_in_independent_entries_equals_the_whole_batch(gcsa_mode):
    """Without gradients the phase body runs one phase sub-image per call (all phases of an
    image with the global Gram); with gradients the whole batch at once: the same numbers."""
    torch.manual_seed(0)
    net = TBSN(dim=8, num_blocks=(1, 1, 1), num_refinement_blocks=1, gcsa_mode=gcsa_mode).double().eval()
    x = torch.rand(3, 3, 32, 48, dtype=torch.float64)
    with torch.no_grad():
        in_entries = net(x)
    whole = net(x)
    assert whole.requires_grad
    assert torch.allclose(in_entries, whole.detach(), rtol=0, atol=1e-12)


def test_cpu_inference_in_independent_entries_is_exactly_blind():
    """The gradient tests run the batched body; this probes the per-entry one without gradients."""
    torch.manual_seed(0)
    net = TBSN(dim=8, num_blocks=(1, 1, 1), num_refinement_blocks=1).double().eval()
    x = torch.rand(1, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        before = net(x)
        for row, col in [(16, 17), (0, 31), (31, 0)]:
            changed = x.clone()
            changed[..., row, col] += 10.0
            after = net(changed)
            assert torch.equal(after[..., row, col], before[..., row, col])
            assert (after - before).abs().amax() > 0


def test_mdaf_gives_the_same_map_in_both_layouts_and_keeps_the_callers():
    from denoise.nn.dual_representation_fusion import DualRepresentationFusion

    torch.manual_seed(0)
    fusion = DualRepresentationFusion(8, heads=2).double()
    x1, x2 = torch.randn(2, 2, 8, 10, 12, dtype=torch.float64)
    expected = fusion(x1, x2)
    got = fusion(x1.contiguous(memory_format=CHANNELS_LAST), x2.contiguous(memory_format=CHANNELS_LAST))
    assert expected.is_contiguous() and got.is_contiguous(memory_format=CHANNELS_LAST)
    assert torch.allclose(got, expected, rtol=0, atol=1e-12)


COMPILED_WINDOW_ATTENTION = """
import torch
from denoise.nn import FastMaskedWindowAttention

torch.manual_seed(0)
attention = FastMaskedWindowAttention(16, heads=1, head_dim=16)
compiled = torch.compile(attention)
for _ in range(3):  # the corruption showed on the second or third step
    x = torch.randn(4, 16, 32, 32).contiguous(memory_format=torch.channels_last).requires_grad_()
    grads = []
    for net in (compiled, attention):
        attention.zero_grad()
        net(x).square().sum().backward()
        grads.append([x.grad, *(p.grad for p in attention.parameters())])
        x.grad = None
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_phase_window_attention_trains_under_torch_compile():
    # Inductor (torch 2.13, CPU) corrupted the heap in autograd's backward of strided key-window
    # views (a crash, with two OpenMP threads); M-WSA's key windows have F.fold as their backward.
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    result = subprocess.run([sys.executable, "-c", COMPILED_WINDOW_ATTENTION], cwd=REPO, env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
