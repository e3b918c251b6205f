"""Training: build everything from the composed config and fit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from denoise.cli.config_rules import check_train_config
from denoise.data.datamodules.base import TrainingDataModule
from denoise.errors import ConfigError
from denoise.lit.callbacks import FinalValidation, LastCheckpoint, ValidationPanels
from denoise.lit.checkpointing import last_checkpoint_path
from denoise.lit.loggers import finish_loggers
from denoise.ops.precision import training_precision

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def resolve_ckpt_path(ckpt_path: str | None, run_dir: Path) -> str | None:
    """``last`` is ``<run dir>/checkpoints/last.ckpt`` of this run dir (hydra.run.dir); else a file."""
    if ckpt_path is None or str(ckpt_path) in ("", "null", "None"):
        return None
    if str(ckpt_path) == "last":
        path = last_checkpoint_path(run_dir)
        if not path.is_file():
            raise ConfigError(
                f"ckpt_path=last: no checkpoint at {path}; to resume a previous run, give its directory, "
                f"e.g. hydra.run.dir=logs/train/runs/<date>_<time> ckpt_path=last, or ckpt_path=<file>"
            )
        return str(path)
    if not Path(ckpt_path).is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such checkpoint file")
    return str(ckpt_path)


def split_global_batch(datamodule: L.LightningDataModule, trainer: L.Trainer) -> None:
    """``data.batch_size`` is the global batch: each of the world's processes gets its share."""
    world = int(trainer.num_nodes) * int(trainer.num_devices)
    if world <= 1 or not isinstance(datamodule, TrainingDataModule):
        return
    batch = datamodule.batch_size
    if batch % world:
        raise ConfigError(
            f"data.batch_size={batch} (the global batch) does not divide among {world} processes "
            f"(trainer.num_nodes={trainer.num_nodes} x trainer.devices={trainer.num_devices}); "
            f"use a multiple of {world}"
        )
    datamodule.share_batch(world)
    log.info(f"Global batch {batch} = {world} processes x {datamodule.batch_size}")


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model of ``cfg``; returns the final metrics."""
    check_train_config(cfg)
    run_dir = Path(cfg.paths.output_dir)
    log.info(f"Run directory: {run_dir}")
    if cfg.get("seed") is not None:  # 0 is a seed too
        L.seed_everything(cfg.seed, workers=True)
    ckpt_path = resolve_ckpt_path(cfg.get("ckpt_path"), run_dir)
    # auto: bf16-mixed where this machine runs bf16 natively, else 32-true (denoise/ops/precision.py);
    # resolved here so that a bad value stops the run before any data are read.
    precision, why = training_precision(cfg.trainer.get("precision", "32-true"), cfg.trainer.get("accelerator", "auto"))
    log.info(f"Precision: {precision} ({why})")

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    # Every run ends with final metrics, whatever max_steps and val_check_interval are.
    callbacks = [*_instantiate_all(cfg.get("callbacks")), FinalValidation()]
    loggers = _instantiate_all(cfg.get("logger"))
    if not loggers:  # the learning-rate monitor writes to a logger and refuses to run without one
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    status = "failed"
    try:
        trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, precision=precision)
        split_global_batch(datamodule, trainer)
        if loggers:  # the resolved config of the run (without Hydra's own section), with the precision that ran
            resolved = {key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
                        for key, value in cfg.items() if key != "hydra"}
            resolved["trainer"]["precision"] = precision
            for logger in loggers:
                logger.log_hyperparams(resolved)
        if ckpt_path:
            log.info(f"Resuming from {ckpt_path}")
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        except SIGTERMException:
            status = "interrupted"
            last = last_checkpoint_path(run_dir)
            log.warning(f"Stopped by SIGTERM at step {trainer.global_step}; resume with "
                        f"hydra.run.dir={run_dir} ckpt_path=last (checkpoint {last})")
            raise SystemExit(143)
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        _print_summary(run_dir, trainer, metrics)
        status = "success"
        return metrics
    finally:
        finish_loggers(loggers, status)


def _print_summary(run_dir: Path, trainer: L.Trainer, metrics: dict[str, float]) -> None:
    lines = [f"Run directory: {run_dir}"]
    if "val/psnr" in metrics:
        noisy, denoised = metrics.get("val/psnr_noisy", float("nan")), metrics["val/psnr"]
        lines.append(
            f"Validation PSNR: noisy {noisy:.2f} dB -> denoised {denoised:.2f} dB "
            f"({denoised - noisy:+.2f} dB; best {metrics.get('val/psnr_best', denoised):.2f} dB)"
        )
    if "val/ssim" in metrics:
        lines.append(f"Validation SSIM (Gaussian): {metrics['val/ssim']:.4f}")
    best = trainer.checkpoint_callback
    if best is not None and best.best_model_path:
        lines.append(f"Best checkpoint: {best.best_model_path}")
    for callback in trainer.callbacks:
        if isinstance(callback, LastCheckpoint) and os.path.isfile(callback.path):
            lines.append(f"Last checkpoint: {callback.path}")
    for callback in trainer.callbacks:
        if isinstance(callback, ValidationPanels) and callback.latest is not None:
            lines.append(f"Panel (noisy | denoised | clean): {callback.latest}")
    if trainer.is_global_zero:
        log.info("\n".join(lines))
