"""What every denoising LightningModule shares: validation, optimisation, the checkpoint format.

A subclass defines ``forward`` (the network on data in [0, 1]), ``denoise`` (the whole inference
protocol, one signature for every module: validation, ``eval.py`` and ``predict.py`` call it) and
``training_step``; validation, the optimiser and schedule, the non-finite loss guard and
``torch.compile`` live here. ``checkpoint["denoise_module"]`` names the class, so
``denoise.lit.load_model(path)`` rebuilds any of them from a checkpoint alone. The data position
of a run (for an exact resume) is the datamodule's own state (``TrainingDataModule.state_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MaxMetric, MeanMetric

from denoise.data.checks import check_channels
from denoise.data.datamodules.base import DenoisingDataModule
from denoise.lit.checkpoint_format import mark_format, upgrade_checkpoint
from denoise.lit.schedule import ScheduleSettings, progress_scheduler, run_progress
from denoise.metrics.scoring import METRICS, batch_scores, scored_estimate
from denoise.ops import InferenceSettings, Progress
from denoise.rules import (
    checked,
    fraction,
    list_of,
    non_negative_number,
    one_of,
    positive_number,
    problems,
    raise_problems,
    rules_of,
)

VAL_PROTOCOLS = ("srgb", "hsi")
# What validation logs of each protocol's scores: log key -> metric (denoise.metrics.scoring).
VAL_LOGS = {
    "srgb": {"val/psnr": "psnr", "val/ssim": "ssim_gaussian"},
    "hsi": {"val/psnr": "mpsnr", "val/mssim": "mssim", "val/sam": "sam_rad"},
}

# The optimiser of every module unless a recipe says otherwise (``model.optimizer`` composes it):
# TBSN's AdamW. Any torch.optim class can replace it through ``_target_``, with its own arguments.
OPTIMIZER = {"_target_": "torch.optim.AdamW", "lr": 3.0e-4, "weight_decay": 0.01, "betas": (0.9, 0.999)}


@dataclass(frozen=True)
class OptimizerArguments:
    """The arguments torch's optimisers share, checked wherever a config sets them (SGD has no
    ``betas``: its config does not set them)."""

    lr: Annotated[float, positive_number()]
    weight_decay: Annotated[float, non_negative_number()]
    betas: Annotated[tuple[float, float], list_of(fraction(high_open=True), length=2)]
    eps: Annotated[float, positive_number()]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or Inf; raised before the weights are touched."""


def plain(config: Any) -> Any:
    return OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config


class DenoisingModule(L.LightningModule):
    """Base of the denoising modules: the network (``network``, a config with ``_target_``) on data
    in [0, 1] scaled to [0, ``data_scale``], and its validation. Subclasses save their
    hyper-parameters (the configs) so that a checkpoint alone rebuilds them."""

    @checked("model.")
    def __init__(
        self,
        network: dict,
        data_scale: Annotated[float, positive_number()],
        val_protocol: Annotated[str, one_of(*VAL_PROTOCOLS)],
    ):
        super().__init__()
        self.net = instantiate(network)
        self.data_scale = float(data_scale)
        self.val_protocol = val_protocol
        # Means over images of the per-image scores, as eval.py averages them (in float64).
        self.val_scores = torch.nn.ModuleDict(
            {name: MeanMetric().set_dtype(torch.float64) for name in METRICS[val_protocol]}
        )
        self.val_psnr_noisy = MeanMetric().set_dtype(torch.float64)
        self.val_psnr_best = MaxMetric()
        self.panel: tuple[torch.Tensor, ...] | None = None

    # --- what eval.py, predict.py and validation use ----------------------------------------------
    inference: InferenceSettings  # the inference settings saved with the model
    network_key = "net"  # the hyper-parameter holding the network's config

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network on (B, C, H, W) data in [0, 1]."""
        return self.net(x * self.data_scale) / self.data_scale

    def denoise(
        self, noisy: torch.Tensor, settings: InferenceSettings | None = None, progress: Progress | None = None
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """The whole inference protocol on (B, C, H, W) images in [0, 1], any size.

        ``settings``: ``self.inference`` when None; ``progress(done, total)`` after every network call.
        """
        raise NotImplementedError

    def benchmark_settings(self) -> InferenceSettings:
        """The inference settings for benchmark sets (``data=sidd_bench``); by default ``self.inference``."""
        return self.inference

    @property
    def in_channels(self) -> int:
        return self.net.in_channels

    @property
    def size_multiple(self) -> int:
        """The network's: inference tiles this module as it tiles its network."""
        return self.net.size_multiple

    def network_config(self) -> dict:
        """The saved config of the network (with its ``_target_``)."""
        return dict(self.hparams.get(self.network_key) or {})

    def setup(self, stage: str) -> None:
        # Lightning sets the datamodule up first, so its channel count is known here.
        datamodule = self.trainer.datamodule if self._trainer else None
        if isinstance(datamodule, DenoisingDataModule) and datamodule.in_channels is not None:
            check_channels(datamodule.in_channels, self.in_channels)

    # --- training ------------------------------------------------------------------------------
    def check_finite(self, loss: torch.Tensor) -> torch.Tensor:
        """Stop before backward when the loss is NaN/Inf: the weights (and last.ckpt) stay good."""
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at step {self.global_step}; the run stops here and "
                f"the last checkpoint keeps the last good weights (try a lower model.optimizer.lr, "
                f"trainer.gradient_clip_val=1.0 or trainer.precision=32-true)"
            )
        return loss

    # --- validation ----------------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        noisy = batch["noisy"]
        denoised = self.denoise(noisy)
        if "clean" not in batch:
            return
        clean = batch["clean"]
        # The scoring of eval.py (denoise.metrics.scoring), so val/* and results.json agree.
        estimate = scored_estimate(self.val_protocol, denoised.float())
        for name, values in batch_scores(self.val_protocol, estimate, clean).items():
            self.val_scores[name].update(values)
        psnr = METRICS[self.val_protocol][0]
        self.val_psnr_noisy.update(batch_scores(self.val_protocol, noisy, clean)[psnr])
        if batch_idx == 0:
            self.panel = (noisy[0].cpu(), estimate[0].cpu(), clean[0].cpu())

    def on_validation_epoch_end(self) -> None:
        if self.val_psnr_noisy.update_count == 0:  # no clean references
            return
        logs = {key: self.val_scores[name].compute() for key, name in VAL_LOGS[self.val_protocol].items()}
        self.val_psnr_best.update(logs["val/psnr"])
        self.log("val/psnr", logs.pop("val/psnr"), prog_bar=True, sync_dist=True)
        self.log("val/psnr_noisy", self.val_psnr_noisy.compute(), sync_dist=True)
        self.log("val/psnr_best", self.val_psnr_best.compute(), sync_dist=True)
        for key, value in logs.items():
            self.log(key, value, sync_dist=True)
        for metric in (*self.val_scores.values(), self.val_psnr_noisy):
            metric.reset()

    # --- optimisation --------------------------------------------------------------------------
    def trainable_parameters(self):
        return self.parameters()

    def configure_optimizers(self) -> dict:
        raise_problems(problems(rules_of(OptimizerArguments), self.hparams.optimizer, "model.optimizer."))
        optimizer = instantiate(self.hparams.optimizer, params=self.trainable_parameters())
        schedule = ScheduleSettings(**(self.hparams.scheduler or {}))
        # Milestones are fractions of the run, counted in steps or in trainer.max_time.
        scheduler = progress_scheduler(optimizer, run_progress(self.trainer), schedule.milestones, schedule.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def compile_network(self, net: torch.nn.Module) -> None:
        """``torch.compile`` in place: parameter names (and so checkpoints) stay those of ``net``."""
        net.compile()

    # --- seeds and checkpoints -----------------------------------------------------------------
    def on_train_start(self) -> None:
        # Every rank of a multi-process run starts from the same seed: give each its own crops.
        if self.trainer.world_size > 1:
            base = int(torch.randint(0, 2**31 - 1, ()))
            L.seed_everything(base + 7919 * self.trainer.global_rank, workers=True, verbose=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["denoise_module"] = f"{type(self).__module__}.{type(self).__qualname__}"
        mark_format(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Before Lightning loads the weights, and hands the datamodule its entry (the data position).
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        upgrade_checkpoint(checkpoint, type(datamodule).__qualname__ if datamodule is not None else None)
