"""One scoring: validation (val/*) and eval.py (results.json) give the same numbers on the same images,
and the torch metrics they share equal scikit-image's."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from skimage.metrics import structural_similarity

from denoise.cli.eval import evaluate
from denoise.lit import BlindSpotModule
from denoise.lit.importing import write_checkpoint
from denoise.metrics.srgb import SSIM_VARIANTS, srgb_metrics
from tests.conftest import compose_entry, compose_train

# A small validation set (two 48x48 demo photos) and the cheapest protocol: seconds on a 2-core CPU.
DATA = ["data.val_size=48"]


@pytest.mark.parametrize("protocol", ["srgb", "hsi"])
def test_validation_and_eval_score_the_same_images_alike(tmp_path, protocol):
    cfg = compose_train(["debug=fast", *DATA], tmp_path / "train")
    settings = OmegaConf.to_container(cfg.model, resolve=True)
    settings.pop("_target_"), settings.pop("_recursive_")
    torch.manual_seed(0)
    module = BlindSpotModule(**settings | {"val_protocol": protocol}).eval()
    checkpoint = write_checkpoint(module, tmp_path / "model.ckpt", imported_from={})

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.validate(module, datamodule=instantiate(cfg.data), verbose=False)
    validated = {key: value.item() for key, value in trainer.callback_metrics.items()}

    eval_cfg = compose_entry("eval", [f"ckpt_path={checkpoint}", "panels=0"], tmp_path / "eval")
    eval_cfg.data = cfg.data  # the same photos, noise and size as validation
    results = evaluate(eval_cfg)
    assert results["protocol"]["name"] == protocol and results["scored_images"] == 2

    logged = {"srgb": {"val/psnr": "psnr", "val/ssim": "ssim_gaussian"},
              "hsi": {"val/psnr": "mpsnr", "val/mssim": "mssim", "val/sam": "sam_rad"}}[protocol]
    # val/* are logged as float32 numbers: equal to results.json up to float32 rounding.
    for key, metric in logged.items():
        assert validated[key] == pytest.approx(results["metrics"][metric], rel=1e-6, abs=1e-7), key
    psnr = next(iter(logged.values()))
    assert validated["val/psnr_noisy"] == pytest.approx(results["baseline"][psnr], rel=1e-6)


def test_torch_srgb_metrics_equal_scikit_image_on_float_images():
    generator = torch.Generator().manual_seed(1)
    clean = torch.rand(3, 3, 29, 41, generator=generator, dtype=torch.float64)
    estimate = (clean + 0.05 * torch.randn(clean.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    scores = srgb_metrics(estimate, clean, quantize=False)
    for i in range(3):
        x, y = (image[i].permute(1, 2, 0).numpy() for image in (estimate, clean))
        for name, options in SSIM_VARIANTS.items():
            expected = structural_similarity(x, y, channel_axis=-1, data_range=1.0, **options)
            assert scores[name][i].item() == pytest.approx(expected, abs=1e-12), name
        assert scores["psnr"][i].item() == pytest.approx(10 * np.log10(1 / np.mean((x - y) ** 2)), abs=1e-10)


def test_an_image_smaller_than_the_ssim_window_is_refused_as_scikit_image_refuses_it():
    small = torch.rand(1, 3, 10, 32)
    with pytest.raises(ValueError, match="11x11 window does not fit the 10x32 image"):
        srgb_metrics(small, small)
