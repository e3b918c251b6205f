"""bf16 autocast: network outputs close to float32, a short bf16 training run as good as float32, and
``auto``: bf16 where the machine runs it natively, float32 elsewhere, explicit values kept."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import yaml

from denoise.cli.train import train
from denoise.errors import ConfigError
from denoise.nets import TBSN
from denoise.ops import InferenceSettings, precision
from denoise.ops.network_pass import NetworkPass
from tests.conftest import compose_entry, compose_train, run_entry

# bf16 keeps 8 significant bits (relative rounding 2**-9); through the ~20 layers of a TBSN the
# relative error of the output stays below 1e-2. Measured on the nets below: 0.41 % (both forms;
# 0.56 % with the output layer in bf16, 0.78 % before that with the transformer blocks' residual
# sums in bf16 too).
BF16_RELATIVE_TOLERANCE = 2e-2
# A bf16 run may end a little above or below the float32 run; it must not lose more than this.
BF16_PSNR_LOSS_DB = 0.3


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return float((approx - exact).norm() / exact.norm())


@pytest.mark.parametrize("form", ["phase", "literal"])
def test_bf16_autocast_output_agrees_with_float32(form):
    torch.manual_seed(0)
    net = TBSN(dim=16, num_blocks=(1, 1, 1), num_refinement_blocks=1, form=form).eval()
    x = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        exact = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approx = net(x)
    assert approx.dtype == torch.float32  # the output layer writes float32 (tests/test_nets.py)
    assert 0 < relative_error(approx, exact) < BF16_RELATIVE_TOLERANCE  # the layers before it ran in bf16


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_residual_stream_of_a_transformer_block_keeps_the_parameters_precision(dtype):
    from denoise.nn import TransformerBlock

    torch.manual_seed(0)
    net = TBSN(dim=16, num_blocks=(1, 1, 1), num_refinement_blocks=1).to(dtype).eval()
    streams = []
    for block in net.modules():
        if isinstance(block, TransformerBlock):
            block.register_forward_hook(lambda module, args, out: streams.append(out.dtype))
    x = torch.rand(1, 3, 32, 32, dtype=dtype) * 255
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.float32):
        out = net(x)
    # Under autocast the layers compute in bf16 and the sums stay float32; float64 stays float64.
    assert streams and set(streams) == {dtype}
    assert out.dtype == dtype


@pytest.mark.slow
def test_a_short_bf16_training_run_loses_no_psnr(tmp_path):
    short = ["trainer.max_steps=60", "trainer.val_check_interval=60", "data.crop_size=64",
             "data.num_workers=0", "logger=csv", "callbacks=none"]
    full = train(compose_train(short, tmp_path / "fp32"))
    half = train(compose_train([*short, "trainer.precision=bf16-mixed"], tmp_path / "bf16"))
    assert full["val/psnr"] > full["val/psnr_noisy"] + 0.5  # long enough to learn (measured: +1.07 dB)
    assert half["val/psnr"] > full["val/psnr"] - BF16_PSNR_LOSS_DB


# --- precision auto: bf16 where the machine runs it natively (denoise/ops/precision.py) --------------

NATIVE = precision.Bf16Support(True, "this CPU runs bf16 natively: avx512_bf16")
EMULATED = precision.Bf16Support(False, "this CPU has no native bf16 (no avx512_bf16 or amx_bf16)")


def fake_cpuinfo(tmp_path, flags: str):
    """A two-processor /proc/cpuinfo with ``flags`` on every processor."""
    path = tmp_path / "cpuinfo"
    processor = "processor\t: {n}\nvendor_id\t: AuthenticAMD\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n"
    path.write_text("".join(processor.format(n=n, flags=flags) for n in range(2)))
    return path


@pytest.fixture
def machine(monkeypatch):
    """``machine(support)``: the device of every resolution reports ``support``."""
    return lambda support: monkeypatch.setattr(precision, "bf16_support", lambda device_type: support)


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("fpu sse2 avx2 avx512f avx512bw avx512_bf16 avx512_vnni", ("avx512_bf16",)),
        ("fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", ("avx512_bf16", "amx_bf16")),
        ("fpu sse2 avx2 avx512f avx512bw avx512_vnni", ()),  # AVX-512 alone emulates bf16
        ("fpu sse2 avx2", ()),
    ],
)
def test_native_bf16_comes_from_the_cpu_flags(tmp_path, flags, expected):
    cpuinfo = fake_cpuinfo(tmp_path, flags)
    assert precision.cpu_bf16_flags(cpuinfo) == expected
    support = precision.cpu_bf16(cpuinfo)
    assert support.native == bool(expected)
    assert all(flag in support.reason for flag in expected or precision.CPU_FLAGS)


def test_without_proc_cpuinfo_torch_reports_the_flag(tmp_path, monkeypatch):
    missing = tmp_path / "no_cpuinfo"
    assert precision.cpu_bf16_flags(missing) is None
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert precision.cpu_bf16(missing).native
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert not precision.cpu_bf16(missing).native
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)  # a torch without the check
    assert not precision.cpu_bf16(missing).native


def test_auto_is_bf16_where_native_and_float32_elsewhere(machine):
    machine(NATIVE)
    chosen, why = precision.training_precision("auto", "cpu")
    assert chosen == "bf16-mixed" and "avx512_bf16" in why and "trainer.precision=32-true" in why
    assert precision.inference_precision("auto", "cpu") == ("bf16", f"auto; {NATIVE.reason}; inference.precision=32 for float32")
    machine(EMULATED)
    assert precision.training_precision("AUTO", "cpu") == ("32-true", f"auto; {EMULATED.reason}")
    assert precision.inference_precision("auto", "cpu")[0] == "32"


def test_the_accelerator_names_the_device_that_decides():
    assert precision.accelerator_device_type("cpu") == "cpu"
    assert precision.accelerator_device_type("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert precision.accelerator_device_type("gpu") == "cuda" or torch.backends.mps.is_available()
    assert precision.accelerator_device_type("mps") == "mps"
    assert not precision.bf16_support("mps").native  # not measured there: float32
    if not torch.cuda.is_available():
        assert precision.training_precision("auto", "gpu")[0] == "32-true"


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", "bf16-true", "64-true", "32", "bf16", 32, 16])
def test_explicit_training_precisions_are_kept(machine, value):
    for support in (NATIVE, EMULATED):
        machine(support)
        assert precision.training_precision(value, "cpu") == (value, "as trainer.precision sets it")


@pytest.mark.parametrize("value", ["32", "bf16"])
def test_explicit_inference_precisions_are_kept(machine, value):
    for support in (NATIVE, EMULATED):
        machine(support)
        assert precision.inference_precision(value, "cpu") == (value, None)
        settings = InferenceSettings(precision=value)
        assert precision.settings_for_device(settings, "cpu") is settings


@pytest.mark.parametrize("value", ["fp8", "bf16-auto", "", True])
def test_a_bad_training_precision_is_one_line_naming_the_choices(value):
    with pytest.raises(ConfigError) as error:
        precision.training_precision(value, "cpu")
    message = str(error.value)
    assert message.startswith(f"trainer.precision={value}: expected auto, 32-true, bf16-mixed") and "\n" not in message


def test_a_bad_inference_precision_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError, match=r"^inference settings: precision='fp8' \(expected 32, bf16 or auto\)$"):
        InferenceSettings(precision="fp8")


def test_inference_settings_keep_auto_and_each_device_resolves_it(machine):
    settings = InferenceSettings.from_config({"precision": "auto"})
    assert settings.precision == "auto"  # saved as auto: every machine that loads it chooses again
    machine(NATIVE)
    assert precision.settings_for_device(settings, "cpu").precision == "bf16"
    machine(EMULATED)
    assert precision.settings_for_device(settings, torch.device("cpu")).precision == "32"


@pytest.mark.parametrize("support, dtype", [(NATIVE, torch.bfloat16), (EMULATED, torch.float32)])
def test_a_network_pass_with_auto_runs_in_the_chosen_precision(machine, support, dtype):
    machine(support)
    seen = []

    def net(x):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return torch.nn.functional.conv2d(x, torch.ones(3, 3, 3, 3) / 27, padding=1)

    settings = InferenceSettings(precision="auto", tile_size=None)
    out = NetworkPass(net, settings, None, 2)(torch.rand(1, 3, 16, 16))
    assert out.dtype == torch.float32 and seen == [dtype if dtype == torch.bfloat16 else False]


def test_recipes_choose_their_precision(tmp_path):
    photos = compose_entry("photos", ["data.noisy_dir=x"], tmp_path)
    student = compose_train(["experiment=photos_distill", "data.noisy_dir=x"], tmp_path)
    cubes = compose_entry("cubes", ["input=x.mat"], tmp_path)
    assert photos.trainer.precision == student.trainer.precision == cubes.trainer.precision == "auto"
    assert student.model.inference.precision == "auto"  # the delivered model's pass
    assert str(cubes.model.inference.get("precision", "32")) == "32"  # cubes are written back in float32
    for paper in ("sidd_bsn", "sidd_apbsn", "sidd_distill", "hsi_bsn", "demo"):  # they reproduce float32 runs
        assert compose_train([f"experiment={paper}"], tmp_path).trainer.precision == "32-true"


@pytest.mark.parametrize("support, chosen", [(NATIVE, "bf16-mixed"), (EMULATED, "32-true")])
def test_a_training_run_with_auto_completes_in_the_chosen_precision(machine, tmp_path, caplog, support, chosen):
    machine(support)
    cfg = compose_train(["debug=fast", "logger=csv", "callbacks=none", "trainer.precision=auto",
                         "trainer.max_steps=2", "data.crop_size=32"], tmp_path)
    with caplog.at_level(logging.INFO, logger="denoise.cli.train"):
        metrics = train(cfg)
    assert math.isfinite(metrics["val/psnr"])
    assert f"Precision: {chosen} (auto; {support.reason}" in caplog.text
    hparams = yaml.safe_load((tmp_path / "csv" / "hparams.yaml").read_text())
    assert hparams["trainer"]["precision"] == chosen  # the logged config says what ran


def test_a_bad_precision_stops_train_py_in_one_line(tmp_path):
    result = run_entry("train.py", ["trainer.precision=fp8", "debug=fast", "logger=none"], tmp_path / "run")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: trainer.precision=fp8: expected auto, 32-true")


@pytest.mark.parametrize("name, capability, native", [("NVIDIA H100", (9, 0), True), ("Tesla V100", (7, 0), False)])
def test_a_cuda_gpu_is_native_with_bf16_units_not_emulation(monkeypatch, name, capability, native):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: capability)
    # torch's own answer: emulation counts unless including_emulation=False
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native or including_emulation)
    support = precision.cuda_bf16()
    assert support.native == native and name in support.reason and f"{capability[0]}.{capability[1]}" in support.reason
