"""bf16 autocast: network outputs close to float32, and a short bf16 training run as good as float32."""

from __future__ import annotations

import pytest
import torch

from denoise.cli.train import train
from denoise.nets import TBSN
from tests.conftest import compose_train

# bf16 keeps 8 significant bits (relative rounding 2**-9); through the ~20 layers of a TBSN the
# relative error of the output stays below 1e-2. Measured on the nets below: 0.78 % (both forms).
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
    assert approx.dtype == torch.bfloat16  # autocast really ran the network in bf16
    assert relative_error(approx.float(), exact) < BF16_RELATIVE_TOLERANCE


@pytest.mark.slow
def test_a_short_bf16_training_run_loses_no_psnr(tmp_path):
    short = ["trainer.max_steps=60", "trainer.val_check_interval=60", "data.crop_size=64",
             "data.num_workers=0", "logger=csv", "callbacks=none"]
    full = train(compose_train(short, tmp_path / "fp32"))
    half = train(compose_train([*short, "trainer.precision=bf16-mixed"], tmp_path / "bf16"))
    assert full["val/psnr"] > full["val/psnr_noisy"] + 0.5  # long enough to learn (measured: +1.07 dB)
    assert half["val/psnr"] > full["val/psnr"] - BF16_PSNR_LOSS_DB
