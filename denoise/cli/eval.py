"""Evaluation: a checkpoint on a data set, metrics beside the noisy baseline, outputs, submissions.

The model comes from the checkpoint alone (network, ``data_scale``, inference protocol); the
config's ``inference`` block overrides only its non-null keys. Every image goes through
``model.denoise`` (the one inference function of ``denoise.ops.inference``).

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
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.utilities.model_helpers import is_overridden
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from denoise.cli.checkpoint import (
    choose_device,
    inference_settings,
    load_model,
    model_channels,
    network_config,
    settings_summary,
)
from denoise.cli.config_rules import check_eval_config
from denoise.data.datamodules.dnd import DNDDataModule
from denoise.data.datamodules.sidd_blocks import SIDDBenchmarkDataModule
from denoise.data.formats.image_files import write_image
from denoise.data.submission import DNDSubmission, SIDDSubmission
from denoise.errors import ConfigError, DataError
from denoise.lit.callbacks import panel_image
from denoise.metrics.hsi import HSI_PROTOCOL, ergas, mpsnr, mssim, sam_degrees, sam_radians
from denoise.metrics.srgb import SRGB_METRICS, SRGB_PROTOCOL, quantize_8bit, srgb_image_metrics
from denoise.ops.protocols import describe_protocol

log = logging.getLogger(__name__)

PROTOCOLS = {"srgb": SRGB_PROTOCOL, "hsi": HSI_PROTOCOL + "; SAM also in degrees (sam_deg)"}
METRICS = {"srgb": SRGB_METRICS, "hsi": ("mpsnr", "mssim", "sam_rad", "sam_deg", "ergas")}
SUBMISSIONS = ("auto", "sidd", "dnd", "none")
LABELS = {
    "psnr": "PSNR (dB)",
    "ssim_gaussian": "SSIM (Gaussian 11x11, sigma 1.5)",
    "ssim_uniform": "SSIM (uniform 7x7)",
    "mpsnr": "MPSNR (dB)",
    "mssim": "MSSIM",
    "sam_rad": "SAM (rad)",
    "sam_deg": "SAM (deg)",
    "ergas": "ERGAS",
}


def hsi_image_metrics(estimate: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """MPSNR, MSSIM, SAM (rad, deg) and ERGAS of one (C, H, W) image (denoise.metrics.hsi)."""
    x, y = estimate[None].clamp(0, 1), reference[None]
    return {
        "mpsnr": mpsnr(x, y).item(),
        "mssim": mssim(x, y).item(),
        "sam_rad": sam_radians(x, y).item(),
        "sam_deg": sam_degrees(x, y).item(),
        "ergas": ergas(x, y).item(),
    }


def choose_protocol(name: str, model, datamodule) -> str:
    if name == "auto":
        from denoise.data.datamodules.hsi import HSIDataModule

        hsi = getattr(model, "val_protocol", "srgb") == "hsi" or isinstance(datamodule, HSIDataModule)
        return "hsi" if hsi else "srgb"
    if name not in PROTOCOLS:
        raise ConfigError(f"protocol={name}: expected auto, {', '.join(PROTOCOLS)}")
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


class SubmissionWriter:
    """The benchmark submission for the data set, if it is one (``submission``: auto, sidd, dnd, none)."""

    def __init__(self, kind: str, datamodule, folder: Path):
        if kind not in SUBMISSIONS:
            raise ConfigError(f"submission={kind}: expected one of {', '.join(SUBMISSIONS)} (or false)")
        if kind == "auto":
            kind = (
                "sidd"
                if isinstance(datamodule, SIDDBenchmarkDataModule)
                else "dnd"
                if isinstance(datamodule, DNDDataModule)
                else "none"
            )
        self.kind, self.folder = kind, folder
        grid = getattr(datamodule, "grid", None)
        self.sidd = SIDDSubmission(tuple(grid) if grid else None) if kind == "sidd" else None
        self.dnd = DNDSubmission(folder) if kind == "dnd" else None

    def add(
        self, index: tuple[int, ...] | None, name: str, estimate: torch.Tensor, denoised: torch.Tensor
    ) -> None:
        if self.kind == "none":
            return
        if index is None or len(index) != 2:
            raise DataError(
                f"{name}: a {self.kind} submission needs each image's (n, k) index from the datamodule"
            )
        if self.sidd is not None:
            block = np.round(estimate.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
            self.sidd.add(index, block)
        else:
            self.dnd.add(index, denoised.clamp(0, 1).permute(1, 2, 0).numpy())

    def close(self) -> dict | None:
        if self.sidd is not None:
            return {name: str(path) for name, path in self.sidd.write(self.folder).items()}
        if self.dnd is not None:
            bundles = self.dnd.close()
            return {"bundles": len(bundles), "folder": str(self.folder)}
        return None


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
    # Benchmark sets run the recipe's benchmark protocol (TBSN: the x8 ensemble of the whole protocol).
    benchmark = isinstance(datamodule, SIDDBenchmarkDataModule)
    settings = inference_settings(model.benchmark_settings() if benchmark else model.inference, cfg.get("inference"))
    channels = model_channels(model)
    data_channels = getattr(datamodule, "in_channels", None)
    if channels is not None and data_channels is not None and int(data_channels) != channels:
        raise DataError(
            f"the data have {data_channels} channels but the checkpoint's network takes {channels} "
            f"(model.net.in_ch={channels}); evaluate it on data with {channels} channels"
        )
    protocol = choose_protocol(str(cfg.get("protocol") or "auto"), model, datamodule)
    submission_kind = cfg.get("submission", "auto")
    submission = SubmissionWriter(
        "none" if submission_kind in (False, None) else str(submission_kind),
        datamodule,
        run_dir / "submission",
    )
    limit, panels = cfg.get("limit"), int(cfg.get("panels") or 0)
    outputs_dir = run_dir / "outputs" if cfg.get("save_outputs") else None
    name = data_choice(cfg)
    log.info(
        f"Evaluating {cfg.ckpt_path} on {name} ({protocol} protocol; {settings_summary(settings)}) "
        f"on {device}"
    )

    rows, panel_paths, seen = [], [], 0
    loader = evaluation_loader(datamodule)
    total = len(loader) if hasattr(loader, "__len__") else None
    total = min(total, limit) if total is not None and limit else total or limit
    for batch in tqdm(loader, total=total, desc="eval", unit="image", disable=None):
        noisy = batch["noisy"].to(device)
        tick = time.perf_counter()
        denoised = model.denoise(noisy, settings).float()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - tick) / noisy.shape[0]
        denoised, noisy = denoised.cpu(), noisy.cpu()
        for b in range(noisy.shape[0]):
            if limit and seen >= limit:
                break
            image_name = str(batch["name"][b]) if "name" in batch else str(seen)
            index = tuple(int(v) for v in batch["index"][b]) if "index" in batch else None
            estimate = quantize_8bit(denoised[b]) if protocol == "srgb" else denoised[b].clamp(0, 1)
            row = {
                "image": seen,
                "name": image_name,
                "index": "_".join(map(str, index)) if index else "",
                "seconds": round(seconds, 4),
            }
            clean = batch["clean"][b] if "clean" in batch else None
            if clean is not None:
                clean = clean.float()
                if protocol == "srgb":
                    scores = srgb_image_metrics(estimate, clean, quantize=False)
                    baseline = srgb_image_metrics(noisy[b], clean)
                else:
                    scores, baseline = hsi_image_metrics(estimate, clean), hsi_image_metrics(noisy[b], clean)
                row |= scores | {f"noisy_{key}": value for key, value in baseline.items()}
            rows.append(row)
            stem = file_stem(image_name)
            if outputs_dir is not None:
                suffix = ".png" if protocol == "srgb" and estimate.shape[0] in (1, 3, 4) else ".npy"
                write_image(outputs_dir / f"{stem}{suffix}", estimate)
            if seen < panels:
                images = [noisy[b], estimate] + ([clean] if clean is not None else [])
                images.append((noisy[b] - denoised[b] + 0.5).clamp(0, 1))
                path = run_dir / "panels" / f"{seen:03d}_{stem}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                panel_image(*images).save(path)
                panel_paths.append(str(path))
            submission.add(index, image_name, estimate, denoised[b])
            seen += 1
        if limit and seen >= limit:
            break
    if not rows:
        raise DataError(f"data={name}: the data set has no images to evaluate")
    submitted = submission.close()

    keys = METRICS[protocol]
    scored = [row for row in rows if keys[0] in row]
    metrics = {key: float(np.mean([row[key] for row in scored])) for key in keys} if scored else None
    baseline = (
        {key: float(np.mean([row[f"noisy_{key}"] for row in scored])) for key in keys} if scored else None
    )
    results = {
        "checkpoint": str(Path(str(cfg.ckpt_path)).resolve()),
        "data": {"name": name, "config": OmegaConf.to_container(cfg.data, resolve=True)},
        "protocol": {"name": protocol, "description": PROTOCOLS[protocol]},
        "model": {
            "class": type(model).__name__,
            "net": network_config(model).get("_target_"),
            "val_protocol": getattr(model, "val_protocol", None),
            "data_scale": getattr(model, "data_scale", None),
        },
        "inference": dataclasses.asdict(settings),
        "inference_protocol": describe_protocol(settings),
        "device": str(device),
        "images": len(rows),
        "scored_images": len(scored),
        "metrics": metrics,
        "baseline": baseline,
        "seconds_per_image": float(np.mean([row["seconds"] for row in rows])),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "outputs": str(outputs_dir) if outputs_dir is not None else None,
        "panels": panel_paths,
        "submission": submitted,
    }
    with open(run_dir / "results.json", "w") as f:
        json.dump(results, f, indent=2)
    _write_rows(run_dir / "per_image.csv", rows)
    _print_summary(run_dir, results)
    return results


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
