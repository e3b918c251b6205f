"""Training: build everything from the composed config and fit."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a callbacks/logger group."""
    if not group:
        return []
    return [instantiate(entry) for entry in group.values() if entry and "_target_" in entry]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit the model of ``cfg``; returns the final metrics."""
    run_dir = Path(cfg.paths.output_dir)
    log.info(f"Run directory: {run_dir}")
    if cfg.get("seed") is not None:  # 0 is a seed too
        L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model)
    callbacks = _instantiate_all(cfg.get("callbacks"))
    loggers = _instantiate_all(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
    _print_summary(run_dir, trainer, metrics)
    for logger in loggers:
        logger.finalize("success")
    return metrics


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
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        if checkpoint.best_model_path:
            lines.append(f"Best checkpoint: {checkpoint.best_model_path}")
        if checkpoint.last_model_path:
            lines.append(f"Last checkpoint: {checkpoint.last_model_path}")
    for callback in trainer.callbacks:
        if getattr(callback, "latest", None) is not None:
            lines.append(f"Panel (noisy | denoised | clean): {callback.latest}")
    log.info("\n".join(lines))
