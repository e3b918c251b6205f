"""Self-supervised blind-spot training: the network learns to predict its own input.

One training step (and nothing else touches the tensors on the way):
noisy crop -> PD down (factor f) -> blind-spot net -> L1 against its own input -> backward.
Validation: noisy image -> PD (factor 2) -> net -> PD up -> [R3] -> metrics against clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
import torch.nn.functional as F

from denoise.data.datamodules.base import TrainingDataModule
from denoise.data.datasets.crops import check_crop_size
from denoise.errors import ConfigError
from denoise.lit.base import VAL_PROTOCOLS, DenoisingModule, plain
from denoise.lit.checkpoint_format import upgrade_network_config
from denoise.lit.schedule import ScheduleSettings
from denoise.ops import InferenceSettings, Progress, blind_spot_denoise, first_sub_image, pd_down
from denoise.ops.pd import LAYOUTS
from denoise.rules import check_fields, integer, one_of

__all__ = ["TRAIN_PD_KEEPS", "VAL_PROTOCOLS", "BlindSpotModule", "TrainPD"]

TRAIN_PD_KEEPS = ("first", "all")


@dataclass(frozen=True)
class TrainPD:
    factor: Annotated[int, integer(1)] = 5
    layout: Annotated[str, one_of(*LAYOUTS)] = "batch"  # "batch" (TBSN) or "mosaic" (AP-BSN)
    pad: Annotated[int, integer(0)] = 0  # per-sub-image zero padding of the mosaic layout
    # "first": only sub-image 0 per crop (TBSN); "all": every sub-image
    keep: Annotated[str, one_of(*TRAIN_PD_KEEPS)] = "first"

    def __post_init__(self):
        check_fields(self, "model.train_pd.")
        if self.keep == "first" and self.layout != "batch":
            raise ConfigError("model.train_pd.keep=first needs model.train_pd.layout=batch")


class BlindSpotModule(DenoisingModule):
    """Trains a blind-spot network on noisy images only.

    ``net`` and ``optimizer`` are configs (dicts with ``_target_``), instantiated here so the
    checkpoint's hyper-parameters alone rebuild the model: ``BlindSpotModule.load_from_checkpoint``.
    """

    def __init__(
        self,
        net: dict,
        optimizer: dict,
        # Blocks of settings, each checked by the class that reads it.
        scheduler: Annotated[dict | None, ScheduleSettings] = None,
        train_pd: Annotated[dict | None, TrainPD] = None,
        inference: Annotated[dict | None, InferenceSettings] = None,
        benchmark_inference: Annotated[dict | None, InferenceSettings] = None,
        data_scale: float = 255.0,
        val_protocol: str = "srgb",
        compile: bool = False,
    ):
        net, optimizer, scheduler = upgrade_network_config(plain(net)), plain(optimizer), plain(scheduler)
        super().__init__(net, data_scale, val_protocol)
        train_pd, inference = plain(train_pd), plain(inference)
        benchmark_inference = plain(benchmark_inference)
        self.save_hyperparameters(
            {"net": net, "optimizer": optimizer, "scheduler": scheduler, "train_pd": train_pd,
             "inference": inference, "benchmark_inference": benchmark_inference, "data_scale": data_scale,
             "val_protocol": val_protocol, "compile": compile}
        )
        self.train_pd = TrainPD(**(train_pd or {}))
        self.inference = InferenceSettings.from_config(inference)
        # Benchmark sets (data=sidd_bench) may use another protocol than validation: the official
        # TBSN code wraps its whole protocol in the x8 self-ensemble there.
        self.benchmark_inference = InferenceSettings.from_config(
            {**(inference or {}), **(benchmark_inference or {})}
        )

    @torch.no_grad()
    def denoise(
        self, noisy: torch.Tensor, settings: InferenceSettings | None = None, progress: Progress | None = None
    ) -> torch.Tensor:
        """PD, the network, R3 (``settings``) on (B, C, H, W) images in [0, 1]."""
        return blind_spot_denoise(self, noisy, settings or self.inference, progress)

    def benchmark_settings(self) -> InferenceSettings:
        return self.benchmark_inference

    # --- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pd = self.train_pd
        x = pd_down(batch["noisy"] * self.data_scale, pd.factor, pd.layout, pd.pad)
        if pd.keep == "first":
            x = first_sub_image(x, pd.factor)
        if self.global_step == 0 and batch_idx == 0:
            self.start_network(x)
        loss = self.check_finite(F.l1_loss(self.net(x), x))
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        return loss

    def start_network(self, x: torch.Tensor) -> None:
        """The network's closed-form start on the first batch of a run (not of a resumed one),
        made the same on every process: each fits on its own batch, rank 0's result is kept."""
        if self.net.start_from_data(x) and torch.distributed.is_available() and torch.distributed.is_initialized():
            for tensor in self.net.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = self.trainer.datamodule if self._trainer else None
        if stage == "fit" and isinstance(datamodule, TrainingDataModule):
            check_crop_size(datamodule.crop_size, self.train_pd.factor)
        if self.hparams.compile and stage == "fit":
            self.compile_network(self.net)
