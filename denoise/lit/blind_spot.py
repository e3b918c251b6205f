"""Self-supervised blind-spot training: the network learns to predict its own input.

One training step (and nothing else touches the tensors on the way):
noisy crop -> PD down (factor f) -> blind-spot net -> L1 against its own input -> backward.
Validation: noisy image -> PD (factor 2) -> net -> PD up -> [R3] -> metrics against clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MaxMetric, MeanMetric

from denoise.data.checks import check_channels
from denoise.data.crops import check_crop_size
from denoise.errors import ConfigError
from denoise.metrics import gaussian_ssim, per_image_psnr, quantize_8bit
from denoise.ops import InferenceSettings, blind_spot_denoise, first_sub_image, pd_down

VAL_PROTOCOLS = ("srgb", "hsi")


@dataclass(frozen=True)
class TrainPD:
    factor: int = 5
    layout: str = "batch"  # "batch" (TBSN) or "mosaic" (AP-BSN)
    pad: int = 0  # per-sub-image zero padding of the mosaic layout
    keep: str = "first"  # "first": only sub-image 0 per crop (TBSN); "all": every sub-image

    def __post_init__(self):
        if self.keep not in ("first", "all"):
            raise ConfigError(f"model.train_pd.keep must be 'first' or 'all', got {self.keep!r}")
        if self.keep == "first" and self.layout != "batch":
            raise ConfigError("model.train_pd.keep=first needs model.train_pd.layout=batch")


def _plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class BlindSpotModule(L.LightningModule):
    """Trains a blind-spot network on noisy images only.

    ``net`` and ``optimizer`` are configs (dicts with ``_target_``), instantiated here so the
    checkpoint's hyper-parameters alone rebuild the model: ``BlindSpotModule.load_from_checkpoint``.
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        scheduler: dict | None = None,
        train_pd: dict | None = None,
        inference: dict | None = None,
        data_scale: float = 255.0,
        val_protocol: str = "srgb",
        compile: bool = False,
    ):
        super().__init__()
        net, optimizer, scheduler = _plain(net), _plain(optimizer), _plain(scheduler)
        train_pd, inference = _plain(train_pd), _plain(inference)
        self.save_hyperparameters(
            {"net": net, "optimizer": optimizer, "scheduler": scheduler, "train_pd": train_pd,
             "inference": inference, "data_scale": data_scale, "val_protocol": val_protocol,
             "compile": compile}
        )
        if val_protocol not in VAL_PROTOCOLS:
            raise ConfigError(f"model.val_protocol must be one of {VAL_PROTOCOLS}, got {val_protocol!r}")
        self.net = instantiate(net)
        self.train_pd = TrainPD(**(train_pd or {}))
        self.inference = InferenceSettings(**(inference or {}))
        self.data_scale = float(data_scale)
        self.val_protocol = val_protocol
        if val_protocol == "srgb":
            self.val_psnr, self.val_psnr_noisy = per_image_psnr(), per_image_psnr()
        else:  # means of per-image MPSNR values
            self.val_psnr, self.val_psnr_noisy = MeanMetric(), MeanMetric()
        self.val_ssim = gaussian_ssim()
        self.val_psnr_best = MaxMetric()
        self.val_extra = torch.nn.ModuleDict({name: MeanMetric() for name in ("mssim", "sam")})
        self.panel: tuple[torch.Tensor, ...] | None = None

    # --- the network applied to data in [0, 1] --------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.data_scale) / self.data_scale

    @torch.no_grad()
    def denoise(self, noisy: torch.Tensor, settings: InferenceSettings | None = None) -> torch.Tensor:
        """Full inference protocol on (B, C, H, W) images in [0, 1]."""
        return blind_spot_denoise(self, noisy, settings or self.inference)

    # --- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pd = self.train_pd
        x = pd_down(batch["noisy"] * self.data_scale, pd.factor, pd.layout, pd.pad)
        if pd.keep == "first":
            x = first_sub_image(x, pd.factor)
        loss = F.l1_loss(self.net(x), x)
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    # --- validation ------------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        noisy = batch["noisy"]
        denoised = self.denoise(noisy)
        if "clean" not in batch:
            return
        clean = batch["clean"]
        if self.val_protocol == "srgb":
            denoised = quantize_8bit(denoised)
            self.val_psnr_noisy.update(quantize_8bit(noisy), clean)
            self.val_psnr.update(denoised, clean)
            self.val_ssim.update(denoised, clean)
        else:
            from denoise.metrics.hsi import mpsnr, mssim, sam_radians

            denoised = denoised.clamp(0, 1)
            self.val_psnr_noisy.update(mpsnr(noisy.clamp(0, 1), clean))
            self.val_psnr.update(mpsnr(denoised, clean))
            self.val_extra["mssim"].update(mssim(denoised, clean))
            self.val_extra["sam"].update(sam_radians(denoised, clean))
        if batch_idx == 0:
            self.panel = (noisy[0].cpu(), denoised[0].cpu(), clean[0].cpu())

    def on_validation_epoch_end(self) -> None:
        if self.val_psnr.update_count == 0:  # no clean references
            return
        psnr = self.val_psnr.compute()
        self.val_psnr_best.update(psnr)
        self.log("val/psnr", psnr, prog_bar=True)
        self.log("val/psnr_noisy", self.val_psnr_noisy.compute())
        self.log("val/psnr_best", self.val_psnr_best.compute())
        if self.val_protocol == "srgb":
            self.log("val/ssim", self.val_ssim.compute())
        else:
            self.log("val/mssim", self.val_extra["mssim"].compute())
            self.log("val/sam", self.val_extra["sam"].compute())
        for metric in (self.val_psnr, self.val_psnr_noisy, self.val_ssim, *self.val_extra.values()):
            metric.reset()

    # --- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        optimizer = instantiate(self.hparams.optimizer, params=self.parameters())
        scheduler_cfg = self.hparams.scheduler or {}
        max_steps = self.trainer.max_steps
        if max_steps is None or max_steps <= 0:
            raise ConfigError(f"trainer.max_steps must be set (> 0) for iteration-based training, got {max_steps}")
        milestones = [int(round(f * max_steps)) for f in scheduler_cfg.get("milestones", [0.4, 0.8])]
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, scheduler_cfg.get("gamma", 0.1))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def setup(self, stage: str) -> None:
        # Lightning sets the datamodule up first, so its channel count is known here.
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None:
            if getattr(datamodule, "in_channels", None) is not None:
                check_channels(datamodule.in_channels, self.net.in_ch)
            if stage == "fit" and getattr(datamodule, "crop_size", None) is not None:
                check_crop_size(datamodule.crop_size, self.train_pd.factor)
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)
