"""Evaluation: a checkpoint on a data set, metrics beside the noisy baseline, outputs, submissions.

The model comes from the checkpoint alone (network, ``data_scale``, inference protocol); the
config's ``inference`` block overrides only its non-null keys. Every image goes through
``model.denoise``, as in validation and predict.py.

Writes to the run directory: ``results.json`` (metrics, baseline, protocol, checkpoint, data,
inference settings, wall time), ``per_image.csv``, ``panels/`` (noisy | denoised | clean |
residual of the first ``panels`` images), with ``save_outputs`` every denoised image under
``outputs/`` (8-bit PNG under the sRGB protocol, i.e. exactly the evaluated values; float32
``.npy`` for hyperspectral data), and for the benchmark sets ``submission/``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from denoise.cli.config_rules import check_eval_config
from denoise.cli.device import choose_device
from denoise.data.datamodules.base import DenoisingDataModule
from denoise.data.datamodules.hsi import HSIDataModule
from denoise.data.datamodules.sidd_blocks import SIDDBenchmarkDataModule
from denoise.data.formats.image_files import write_image
from denoise.data.submission import SubmissionWriter
from denoise.errors import ConfigError, DataError
from denoise.lit import DenoisingModule, load_model
from denoise.lit.panels import save_evaluation_panel
from denoise.metrics.scoring import LABELS, SCORING_PROTOCOLS, image_scores, mean_scores, scored_estimate
from denoise.ops import InferenceSettings
from denoise.ops.precision import settings_for_device
from denoise.ops.protocols import describe_protocol, protocol_summary

log = logging.getLogger(__name__)


@dataclass
class DenoisedImage:
    """One image of the evaluation set and what the model made of it."""

    number: int
    name: str
    index: tuple[int, ...] | None  # the benchmark's (n, k) or (image, box)
    noisy: torch.Tensor
    denoised: torch.Tensor
    clean: torch.Tensor | None
    seconds: float  # the model's time for this image

    def row(self) -> dict:
        return {
            "image": self.number,
            "name": self.name,
            "index": "_".join(map(str, self.index)) if self.index else "",
            "seconds": round(self.seconds, 4),
        }


def model_summary(model) -> dict:
    """What results.json says of the evaluated model."""
    return {
        "class": type(model).__name__,
        "net": model.network_config().get("_target_"),
        "val_protocol": model.val_protocol,
        "data_scale": model.data_scale,
    }


def evaluate(cfg: DictConfig) -> dict:
    """Evaluate ``cfg.ckpt_path`` on ``cfg.data``; returns what results.json holds."""
    started = time.perf_counter()
    check_eval_config(cfg)
    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log.info(f"Run directory: {run_dir}")
    device = choose_device(cfg.get("device"))
    model = load_model(cfg.get("ckpt_path"), device)
    datamodule = instantiate(cfg.data)
    datamodule.setup("test")
    check_data_fits_model(model, datamodule)
    # precision auto becomes what this device runs (bf16 where native, else 32), so results.json says what ran
    settings = settings_for_device(evaluation_settings(model, datamodule, cfg.get("inference")), device)
    protocol = choose_protocol(str(cfg.get("protocol") or "auto"), model, datamodule)
    files = EvaluationFiles(cfg, run_dir, protocol, datamodule)
    name = data_choice(cfg)
    log.info(f"Evaluating {cfg.ckpt_path} on {name} ({protocol} protocol; {protocol_summary(settings)}) on {device}")

    rows = []
    for image in denoised_images(model, datamodule, settings, device, cfg.get("limit")):
        estimate = scored_estimate(protocol, image.denoised)
        scores = image_scores(protocol, estimate, image.noisy, image.clean) if image.clean is not None else {}
        rows.append(image.row() | scores)
        files.add(image, estimate)
    if not rows:
        raise DataError(f"data={name}: the data set has no images to evaluate")
    written = files.close()

    results = {
        "checkpoint": str(Path(str(cfg.ckpt_path)).resolve()),
        "data": {"name": name, "config": OmegaConf.to_container(cfg.data, resolve=True)},
        "protocol": {"name": protocol, "description": SCORING_PROTOCOLS[protocol]},
        "model": model_summary(model),
        "inference": dataclasses.asdict(settings),
        "inference_protocol": describe_protocol(settings),
        "device": str(device),
        "images": len(rows),
        **mean_scores(protocol, rows),
        "seconds_per_image": float(np.mean([row["seconds"] for row in rows])),
        "wall_time_s": round(time.perf_counter() - started, 3),
        **written,
    }
    with open(run_dir / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    _write_rows(run_dir / "per_image.csv", rows)
    _print_summary(run_dir, results)
    return results


def denoised_images(
    model: DenoisingModule, datamodule: L.LightningDataModule, settings: InferenceSettings, device: torch.device,
    limit: int | None,
) -> Iterator[DenoisedImage]:
    """The first ``limit`` (all: None) images of the evaluation set, denoised batch by batch (on the CPU)."""
    loader = evaluation_loader(datamodule)
    batches = len(loader) if hasattr(loader, "__len__") else None
    total = min(batches, limit) if batches is not None and limit else batches or limit
    number = 0
    for batch in tqdm(loader, total=total, desc="eval", unit="image", disable=None):
        noisy = batch["noisy"].to(device)
        tick = time.perf_counter()
        denoised = model.denoise(noisy, settings).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - tick) / noisy.shape[0]
        denoised, noisy = denoised.cpu(), noisy.cpu()
        for b in range(noisy.shape[0]):
            if limit and number >= limit:
                return
            yield DenoisedImage(
                number=number,
                name=str(batch["name"][b]) if "name" in batch else str(number),
                index=tuple(int(v) for v in batch["index"][b]) if "index" in batch else None,
                noisy=noisy[b],
                denoised=denoised[b],
                clean=batch["clean"][b].float() if "clean" in batch else None,
                seconds=seconds,
            )
            number += 1


class EvaluationFiles:
    """What eval.py writes per image besides the metrics: outputs, panels, the benchmark submission."""

    def __init__(self, cfg: DictConfig, run_dir: Path, protocol: str, datamodule: L.LightningDataModule):
        self.run_dir, self.protocol = run_dir, protocol
        self.outputs = run_dir / "outputs" if cfg.get("save_outputs") else None
        self.panels, self.panel_paths = int(cfg.get("panels") or 0), []
        kind = cfg.get("submission", "auto")
        self.submission = SubmissionWriter(
            "none" if kind in (False, None) else str(kind), datamodule, run_dir / "submission"
        )

    def add(self, image: DenoisedImage, estimate: torch.Tensor) -> None:
        stem = file_stem(image.name)
        if self.outputs is not None:
            suffix = ".png" if self.protocol == "srgb" and estimate.shape[0] in (1, 3, 4) else ".npy"
            write_image(self.outputs / f"{stem}{suffix}", estimate)
        if image.number < self.panels:
            path = self.run_dir / "panels" / f"{image.number:03d}_{stem}.png"
            save_evaluation_panel(path, image.noisy, estimate, image.clean, image.denoised)
            self.panel_paths.append(str(path))
        self.submission.add(image.index, image.name, estimate, image.denoised)

    def close(self) -> dict:
        """The files written, as results.json names them."""
        return {
            "outputs": str(self.outputs) if self.outputs is not None else None,
            "panels": self.panel_paths,
            "submission": self.submission.close(),
        }


def evaluation_settings(model: DenoisingModule, datamodule, overrides: DictConfig | None) -> InferenceSettings:
    """The checkpoint's settings with the config's non-null ``inference`` keys. Benchmark sets run
    the recipe's benchmark protocol (TBSN: the x8 ensemble of the whole protocol)."""
    saved = model.benchmark_settings() if isinstance(datamodule, SIDDBenchmarkDataModule) else model.inference
    return saved.overridden(OmegaConf.to_container(overrides, resolve=True) if overrides is not None else None)


def check_data_fits_model(model: DenoisingModule, datamodule) -> None:
    data_channels = datamodule.in_channels if isinstance(datamodule, DenoisingDataModule) else None
    if data_channels is not None and int(data_channels) != model.in_channels:
        channels = model.in_channels
        raise DataError(
            f"the data have {data_channels} channels but the checkpoint's network takes {channels} "
            f"(model.{model.network_key}.in_channels={channels}); evaluate it on data with {channels} channels"
        )


def choose_protocol(name: str, model: DenoisingModule, datamodule) -> str:
    """``auto``: hsi when the model validates with hsi or the data are hyperspectral, else srgb."""
    if name == "auto":
        return "hsi" if model.val_protocol == "hsi" or isinstance(datamodule, HSIDataModule) else "srgb"
    return name


def evaluation_loader(datamodule: L.LightningDataModule):
    """The datamodule's test loader if it has one, else its validation loader."""
    for hook in ("test_dataloader", "val_dataloader"):
        if is_overridden(hook, datamodule, L.LightningDataModule):
            return getattr(datamodule, hook)()
    raise ConfigError(f"{type(datamodule).__name__} has neither a test_dataloader nor a val_dataloader")


def data_choice(cfg: DictConfig) -> str:
    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get("data")
        if choice:
            return str(choice)
    return str(cfg.data.get("_target_", "data")).rsplit(".", 1)[-1]


def file_stem(name: str) -> str:
    """A name made safe as a file name."""
    return re.sub(r"[^\w.\-]+", "_", str(name)).strip("._") or "image"


def _write_rows(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _print_summary(run_dir: Path, results: dict) -> None:
    lines = [
        f"Run directory: {run_dir}",
        (
            f"Evaluated {results['images']} images of {results['data']['name']} "
            f"in {results['wall_time_s']:.1f} s "
            f"({results['seconds_per_image']:.3f} s per image; {results['protocol']['name']} protocol)"
        ),
    ]
    if results["metrics"]:
        for key, value in results["metrics"].items():
            noisy = results["baseline"][key]
            precision = 2 if "psnr" in key or key in ("ergas", "sam_deg") else 4
            lines.append(
                f"{LABELS[key]}: noisy {noisy:.{precision}f} -> denoised {value:.{precision}f} "
                f"({value - noisy:+.{precision}f})"
            )
    else:
        lines.append("No clean references: no metrics (outputs and submission only)")
    lines.append(f"Results: {run_dir / 'results.json'} and {run_dir / 'per_image.csv'}")
    if results["outputs"]:
        lines.append(f"Denoised images: {results['outputs']}")
    if results["panels"]:
        lines.append(f"Panels (noisy | denoised | clean | residual): {Path(results['panels'][0]).parent}")
    if results["submission"]:
        lines.append(f"Submission: {', '.join(f'{k}={v}' for k, v in results['submission'].items())}")
    log.info("\n".join(lines))
