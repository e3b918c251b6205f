"""Networks: parameter counts, shapes, errors, masked conv, and the two forms agreeing."""

import pytest
import torch
from hydra.utils import instantiate

from denoise.errors import ConfigError
from denoise.nets import DBSN, TBSN, Network
from denoise.nn import CentreMaskedConv2d
from tests.conftest import CONFIGS, compose_net

# Every network config: blind-spot networks (model/net) and non-blind students (model/student).
NETWORK_CONFIGS = [
    (group, path.stem) for group in ("net", "student") for path in sorted((CONFIGS / "model" / group).glob("*.yaml"))
]

SMALL_TBSN = dict(dim=16, num_blocks=(1, 1, 1), num_refinement_blocks=1, channel_heads=(1, 1, 2), window_heads=(1, 1, 2))


def count(net):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


@pytest.mark.parametrize("form", ["phase", "literal"])
def test_tbsn_paper_parameter_count(form):
    assert count(TBSN(form=form)) == 12_746_780


def test_dbsn_parameter_count():
    assert count(DBSN()) == 3_656_131


def test_centre_masked_conv_ignores_centre_and_never_edits_weights():
    conv = CentreMaskedConv2d(2, 3, phase_stride=3)
    assert conv.kernel_size == (5, 5)
    before = conv.weight.detach().clone()
    x = torch.zeros(1, 2, 9, 9)
    x[0, :, 4, 4] = 1.0
    out = conv(x)
    assert torch.equal(conv.weight, before)
    assert out[0, :, 4, 4].abs().sum() == 0  # bias off, only the centre tap could see it
    assert out[0, :, 4, 5].abs().sum() > 0


@pytest.mark.parametrize("size", [(32, 32), (37, 50), (8, 8)])
def test_tbsn_any_size(size):
    net = TBSN(**SMALL_TBSN).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, *size)).shape == (2, 3, *size)


@pytest.mark.parametrize("size", [(12, 12), (13, 29)])
def test_dbsn_any_size(size):
    net = DBSN(channels=16, num_blocks=2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 3, *size)).shape == (1, 3, *size)


@pytest.mark.parametrize("net", [TBSN(**SMALL_TBSN), DBSN(channels=8, num_blocks=1)])
def test_wrong_channel_count_names_in_channels(net):
    with pytest.raises(ValueError, match="expected 3 input channels \\(in_channels\\), got 1"):
        net(torch.rand(1, 1, 32, 32))


def test_tbsn_config_is_built_from_tbsn_options():
    """tbsn.yaml chooses the node built from TBSNOptions: every field is a key, with its default."""
    from dataclasses import fields

    from omegaconf import OmegaConf

    from denoise.nets.tbsn import TBSNOptions

    cfg = OmegaConf.to_container(compose_net("tbsn"))
    listed = {key: tuple(value) if isinstance(value, list) else value for key, value in cfg.items()
              if key not in ("_target_", "in_channels")}
    assert listed == {field.name: field.default for field in fields(TBSNOptions)}
    assert (cfg["_target_"], cfg["in_channels"]) == ("denoise.nets.TBSN", 3)


def test_kernels_is_a_config_key():
    cfg = compose_net("tbsn_small")
    cfg.kernels = "reference"
    assert instantiate(cfg).options.kernels == "reference"


def test_unknown_form_is_rejected():
    with pytest.raises(ConfigError, match=r"^TBSN: form='fast': expected one of phase, literal$"):
        TBSN(form="fast", **SMALL_TBSN)


def _agree(phase_net, literal_net, size):
    phase_net, literal_net = phase_net.double(), literal_net.double()
    literal_net.load_state_dict(phase_net.state_dict())  # same parameter names and shapes
    x = torch.rand(2, phase_net.in_channels, *size, dtype=torch.float64) * 255
    with torch.no_grad():
        return (phase_net(x) - literal_net(x)).abs().max().item()


@pytest.mark.parametrize("gcsa_mode", ["phase", "global"])
def test_tbsn_paper_phase_and_literal_forms_agree(gcsa_mode):
    torch.manual_seed(0)
    diff = _agree(TBSN(gcsa_mode=gcsa_mode), TBSN(form="literal", gcsa_mode=gcsa_mode), (64, 64))
    assert diff < 1e-8


@pytest.mark.parametrize("size", [(32, 32), (45, 38)])
def test_tbsn_small_forms_agree_with_internal_padding(size):
    torch.manual_seed(1)
    assert _agree(TBSN(**SMALL_TBSN), TBSN(form="literal", **SMALL_TBSN), size) < 1e-8


def test_dbsn_forms_agree():
    torch.manual_seed(2)
    assert _agree(DBSN(), DBSN(form="literal"), (30, 42)) < 1e-8


def test_literal_window_attention_matches_its_definition():
    """Brute force one query of the literal M-WSA: 12x12 keys, even offsets, relative logits.

    Official convention: row offset + 13 of each table, against q scaled by head_dim ** -0.5.
    """
    from denoise.nn import MaskedWindowAttention

    torch.manual_seed(3)
    attn = MaskedWindowAttention(8, heads=1, head_dim=4, window=8, form="literal").double()
    x = torch.randn(1, 8, 16, 16, dtype=torch.float64)
    out = attn(x)
    q, k, v = attn.qkv(x).chunk(3, dim=1)
    for qy, qx in [(5, 6), (8, 15), (0, 0)]:
        top, left = (qy // 8) * 8 - 2, (qx // 8) * 8 - 2
        logits, values = [], []
        for ky in range(top, top + 12):
            for kx in range(left, left + 12):
                if (ky - qy) % 2 or (kx - qx) % 2:
                    continue
                inside = 0 <= ky < 16 and 0 <= kx < 16
                key = k[0, :, ky, kx] if inside else torch.zeros(4, dtype=torch.float64)
                value = v[0, :, ky, kx] if inside else torch.zeros(4, dtype=torch.float64)
                rel = attn.rel_height[ky - qy + 13] + attn.rel_width[kx - qx + 13]
                logits.append((q[0, :, qy, qx] * 4**-0.5) @ (key + rel))
                values.append(value)
        assert len(logits) == 36
        mixed = torch.stack(logits).softmax(0) @ torch.stack(values)
        expected = attn.project_out(mixed[None, :, None, None])[0, :, 0, 0]
        assert torch.allclose(out[0, :, qy, qx], expected, atol=1e-12)


@pytest.mark.parametrize("name", ["tbsn", "tbsn_small", "dbsn", "dbsn_small"])
def test_net_configs_instantiate_to_the_contract(name):
    from hydra.utils import instantiate

    cfg = compose_net(name)
    net = instantiate(cfg)
    assert net.in_channels == cfg.in_channels


@pytest.mark.parametrize("group, name", NETWORK_CONFIGS, ids=[f"{g}/{n}" for g, n in NETWORK_CONFIGS])
def test_under_bf16_autocast_every_network_writes_its_image_in_float32(group, name):
    """The layers compute in bf16, the output layer in float32: bf16 would round the image itself."""
    cfg = compose_net(name, group)
    torch.manual_seed(0)
    net = instantiate(cfg).eval()
    for parameter in net.parameters():  # a closed-form start may zero an output layer: give it values
        parameter.data.normal_(0, 0.1)
    inner = []
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda module, args, out: inner.append(out.dtype))
    x = torch.rand(1, net.in_channels, 2 * net.size_multiple, 2 * net.size_multiple)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    assert torch.bfloat16 in inner and out.dtype == torch.float32
    assert (out != out.bfloat16().float()).float().mean() > 0.5  # not on bf16's grid


@pytest.mark.parametrize("group, name", NETWORK_CONFIGS, ids=[f"{g}/{n}" for g, n in NETWORK_CONFIGS])
def test_every_network_config_follows_the_network_contract(group, name):
    """in_channels and size_multiple as ints; the base class checks, pads, runs the body, crops."""
    cfg = compose_net(name, group)
    torch.manual_seed(0)
    net = instantiate(cfg).eval()
    assert isinstance(net, Network) and type(net).forward is Network.forward
    assert isinstance(net.in_channels, int) and net.in_channels == cfg.in_channels
    assert isinstance(net.size_multiple, int) and net.size_multiple >= 1

    seen = []
    body = net.forward_padded
    net.forward_padded = lambda x: seen.append(tuple(x.shape[-2:])) or body(x)
    size = (2 * net.size_multiple + 3, net.size_multiple + 5)  # a multiple of nothing it needs
    x = torch.rand(1, net.in_channels, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape
    (padded,) = seen
    assert all(side % net.size_multiple == 0 and side >= want for side, want in zip(padded, size))
    with pytest.raises(ValueError, match=f"expected {net.in_channels} input channels \\(in_channels\\)"):
        net(torch.rand(1, net.in_channels + 1, *size))


@pytest.mark.parametrize("gcsa_mode", ["phase", "global"])
def test_tbsn_phase_and_literal_forms_have_the_same_gradients(gcsa_mode):
    # The phase form's hand-written backward passes (channel norm, G-CSA's Gram) train the
    # network exactly as autograd through the literal form's reference layers does.
    torch.manual_seed(3)
    phase = TBSN(gcsa_mode=gcsa_mode, **SMALL_TBSN).double()
    literal = TBSN(form="literal", gcsa_mode=gcsa_mode, **SMALL_TBSN).double()
    literal.load_state_dict(phase.state_dict())
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 255
    gradients = []
    for net in (phase, literal):
        loss = (net(x) - x).abs().mean()
        gradients.append(dict(zip(dict(net.named_parameters()), torch.autograd.grad(loss, list(net.parameters())))))
    for name, expected in gradients[1].items():
        got = gradients[0][name]
        assert (got - expected).abs().max() <= 1e-8 * expected.abs().max(), name
