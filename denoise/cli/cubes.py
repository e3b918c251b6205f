"""Your own noisy hyperspectral cubes in one command: a blind-spot network trained on them, the cubes denoised.

``python cubes.py input=my_cubes/`` checks every cube first (readable, one cube per file, finite,
the same band count, the output writable and not over an input), measures each band's noise,
then runs two steps under its run directory:

1. ``train/``: ``python train.py experiment=hsi_cube data.files=[...] data.bands=<B>`` trains a
   blind-spot network on the noisy cubes (real noise, no clean data) for the budget;
2. ``denoised/`` (or ``output=``): every cube denoised whole, blended per band with the noisy
   cube by its noise level (``cubes.blend``), and written as the same file
   (:mod:`denoise.cli.cube_denoise`, also what ``predict.py`` runs for such a checkpoint).

``cubes.json`` holds the checkpoint, the outputs, the times and each cube's per-band noise.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig

from denoise.cli.cube_denoise import CubeOutcome, CubeReading, denoise_cube_file, probe_single_cube
from denoise.cli.device import choose_device
from denoise.cli.outputs import check_targets
from denoise.cli.photos import budget_seconds, max_time
from denoise.cli.train import train
from denoise.data.checks import check_finite
from denoise.data.formats.hsi_cube import (
    SUFFIXES,
    CubeInfo,
    apply_normalization,
    bands_first,
    constant_bands,
    expand_files,
    normalization,
    read_cube,
    read_stored,
)
from denoise.data.noise_level import band_sigmas
from denoise.errors import ConfigError, DataError
from denoise.lit import load_model
from denoise.lit.checkpointing import last_checkpoint_path
from denoise.metrics.hsi import mpsnr, sam_radians

log = logging.getLogger(__name__)
COMMAND_KEYS = ("input", "output", "reference", "mat_key", "layout", "cubes", "experiment")


@dataclass
class CubeSurvey:
    """What the command knows of a cube before training."""

    info: CubeInfo
    sigmas: np.ndarray  # per band, in the cube's own units
    constant: list[int]


@dataclass
class CubesResult:
    run_dir: Path
    checkpoint: Path
    output: Path
    seconds: dict[str, float] = field(default_factory=dict)
    cubes: list[dict] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def cube_files(source, setting: str = "input") -> list[Path]:
    """A cube file, a folder of cubes, a glob, or a list of files and globs -> the files."""
    if source is None or source == "" or (isinstance(source, (list, ListConfig)) and not source):
        raise ConfigError(f"{setting} is not set: pass {setting}=<a cube file, a folder, or a list/glob of cubes>")
    if isinstance(source, (list, ListConfig)):
        return [path for item in source for path in cube_files(str(item), setting)]
    path = Path(str(source)).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise ConfigError(f"{setting}={source}: no cubes ({', '.join(SUFFIXES)}) in this folder")
        return files
    if not any(ch in str(path) for ch in "*?[") and not path.is_file():
        raise ConfigError(f"{setting}={source} does not exist; expected a cube file ({', '.join(SUFFIXES)}), "
                          f"a folder of them, or a glob")
    try:
        return expand_files([str(path)], setting)
    except DataError as error:
        raise ConfigError(str(error).removeprefix("data.")) from error


def matched_references(reference, files: list[Path]) -> list[Path] | None:
    """The reference of every cube, by file name; None without ``reference``."""
    if reference is None or reference == "":
        return None
    by_name = {path.name: path for path in cube_files(reference, "reference")}
    missing = [path.name for path in files if path.name not in by_name]
    if missing:
        raise ConfigError(f"reference={reference}: no reference named {', '.join(missing)}; "
                          f"references need the noisy cubes' file names")
    return [by_name[path.name] for path in files]


def output_targets(output: Path, files: list[Path]) -> list[Path]:
    """``output/<name>`` for every cube, checked before any training (:func:`check_targets`)."""
    targets = {path: output / path.name for path in files}
    check_targets(targets, output, "output", str(output))
    return list(targets.values())


def survey(files: list[Path], key: str | None, layout: str = "auto") -> list[CubeSurvey]:
    """Read every cube once before training: one cube per file, finite, a common band count;
    its per-band noise and its constant bands."""
    surveys, counts = [], {}
    for path in files:
        info = probe_single_cube(path, key, layout)
        counts.setdefault(info.bands, path)
        if len(counts) > 1:
            (bands, first), (other, _) = list(counts.items())[:2]
            raise DataError(f"input: cubes differ in band count ({first.name} has {bands}, {path.name} has {other}); "
                            f"denoise them in separate runs")
        cube = np.ascontiguousarray(bands_first(info, read_stored(info)), dtype=np.float32)
        check_finite(cube, str(path), "fix the file or leave it out of input")
        constant = constant_bands(cube)
        if constant.all():
            raise DataError(f"{path}: every band is constant; nothing to denoise")
        surveys.append(CubeSurvey(info, band_sigmas(cube), [int(band) for band in np.flatnonzero(constant)]))
        del cube
    keys = {item.info.key for item in surveys}
    if len(keys) > 1:
        raise ConfigError(f"input: the .mat cubes are stored under different variables ({', '.join(sorted(map(str, keys)))}); "
                          f"give them one name, or denoise them in separate runs")
    return surveys


def training_overrides(overrides: list[str]) -> list[str]:
    """The command line's overrides that belong to train.py (not the command's own keys)."""
    kept = []
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.startswith(("hydra.", "hydra/", "cubes.")) or key in COMMAND_KEYS:
            continue
        kept.append(override)
    return kept


def budget_overrides(budget_minutes) -> list[str]:
    """``trainer.max_time`` of the budget (none for null: the recipe's own length)."""
    seconds = budget_seconds(budget_minutes, "cubes.budget_minutes")
    return [] if seconds is None else [f"trainer.max_time={max_time(seconds)}"]


def training_config(run_dir: Path, overrides: list[str], surveys: list[CubeSurvey], references: list[Path] | None,
                    layout: str = "auto") -> DictConfig:
    extra = []
    if references is None:  # nothing to validate against: no whole-cube passes during training
        extra.append("trainer.limit_val_batches=0")
    cfg = compose("train", overrides=["experiment=hsi_cube", *overrides, *extra,
                                      f"paths.output_dir={run_dir / 'train'}"])
    first = surveys[0].info
    cfg.data.files = [item.info.path for item in surveys]
    cfg.data.reference_files = [str(path) for path in references] if references else None
    cfg.data.bands = first.bands
    cfg.data.key = first.key
    cfg.data.layout = layout
    cfg.data.band_range = None
    cfg.data.holdout = 0.0
    return cfg


def cubes(cfg: DictConfig, overrides: list[str] | None = None) -> CubesResult:
    """Check, train, denoise (see the module docstring) for the composed ``cubes.yaml`` config ``cfg``
    and the command line's ``overrides`` (by default those of the running Hydra app)."""
    run_dir = Path(cfg.paths.output_dir)
    budget = budget_overrides(cfg.cubes.get("budget_minutes"))
    files = cube_files(cfg.get("input"))
    references = matched_references(cfg.get("reference"), files)
    output = Path(str(cfg.get("output") or run_dir / "denoised")).expanduser()
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []

    started = time.perf_counter()
    layout = str(cfg.get("layout") or "auto")
    surveys = survey(files, cfg.get("mat_key"), layout)
    targets = output_targets(output, files)  # creates the folder: after the cubes passed
    train_cfg = training_config(run_dir, [*training_overrides(overrides), *budget], surveys, references, layout)
    result = CubesResult(run_dir, last_checkpoint_path(run_dir / "train"), output)
    result.seconds["survey"] = time.perf_counter() - started

    started = time.perf_counter()
    result.metrics = train(train_cfg)
    result.seconds["train"] = time.perf_counter() - started
    if not result.checkpoint.is_file():
        raise ConfigError(f"training wrote no {result.checkpoint}; keep a callbacks group that saves "
                          f"checkpoints (callbacks=default)")

    started = time.perf_counter()
    model = load_model(result.checkpoint, choose_device(None))
    reading = CubeReading.from_checkpoint(result.checkpoint)
    blend = bool(cfg.cubes.get("blend", True))
    for index, (item, target) in enumerate(zip(surveys, targets)):
        outcome = denoise_cube_file(model, model.inference, Path(item.info.path), target, reading, blend=blend)
        record = cube_record(item, outcome)
        if references:
            record["reference"] = reference_scores(item.info, target, references[index], reading)
        result.cubes.append(record)
    result.seconds["denoise"] = time.perf_counter() - started
    (run_dir / "cubes.json").write_text(json.dumps(
        {"checkpoint": str(result.checkpoint), "output": str(output), "seconds": result.seconds,
         "metrics": result.metrics, "cubes": result.cubes}, indent=2))
    _summary(result)
    return result


def cube_record(item: CubeSurvey, outcome: CubeOutcome) -> dict:
    info = item.info
    shares = outcome.noisy_share
    return {"input": info.path, "output": str(outcome.target), "key": info.key, "bands": info.bands,
            "height": info.height, "width": info.width, "seconds": round(outcome.seconds, 2),
            "constant_bands": item.constant, "noise_sigma_per_band": [round(float(s), 4) for s in item.sigmas],
            "noisy_share_per_band": None if shares is None else [round(float(g), 4) for g in shares]}


def reference_scores(info: CubeInfo, output: Path, reference: Path, reading: CubeReading) -> dict:
    """MPSNR (dB) and SAM (radians) of the noisy and the written cube against the reference, all
    three normalised by the noisy cube's parameters (as validation does), on the written file:
    what the user gets, blend and rounding included."""
    noisy = read_cube(info)
    params = normalization(noisy, reading.normalize, reading.quantiles, reading.scale, info.path)
    clean = as_tensor(read_cube(probe_single_cube(reference, info.key, reading.layout, "mat_key")), params)
    noisy = as_tensor(noisy, params)
    denoised = as_tensor(read_cube(probe_single_cube(output, info.key, reading.layout)), params)
    return {"mpsnr_noisy": float(mpsnr(noisy, clean)), "mpsnr": float(mpsnr(denoised, clean)),
            "sam_noisy": float(sam_radians(noisy, clean)), "sam": float(sam_radians(denoised, clean))}


def as_tensor(cube: np.ndarray, params) -> torch.Tensor:
    return torch.from_numpy(apply_normalization(cube, params))[None].clamp_(0, 1)


def _summary(result: CubesResult) -> None:
    times = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.seconds.items())
    lines = [f"Cubes run directory: {result.run_dir} ({times})", f"Checkpoint: {result.checkpoint}"]
    for record in result.cubes:
        if "reference" in record:
            scores = record["reference"]
            lines.append(f"{Path(record['input']).name} against its reference (the written cube): MPSNR "
                         f"{scores['mpsnr_noisy']:.2f} -> {scores['mpsnr']:.2f} dB, SAM {scores['sam_noisy']:.4f} -> "
                         f"{scores['sam']:.4f} rad")
    if "val/psnr" in result.metrics:
        lines.append(f"Validation during training (network alone): MPSNR {result.metrics.get('val/psnr_noisy', float('nan')):.2f} dB "
                     f"-> {result.metrics['val/psnr']:.2f} dB, SAM {result.metrics.get('val/sam', float('nan')):.4f} rad")
    for record in result.cubes:
        sigmas = np.array([s for band, s in enumerate(record["noise_sigma_per_band"])
                           if band not in record["constant_bands"]])
        constant = f", {len(record['constant_bands'])} constant band(s) kept" if record["constant_bands"] else ""
        lines.append(f"{Path(record['input']).name}: {record['height']}x{record['width']}x{record['bands']}, "
                     f"noise sigma per band median {np.median(sigmas):.4g} (range {sigmas.min():.4g}-{sigmas.max():.4g}), "
                     f"denoised in {record['seconds']:.1f} s{constant}")
    lines.append(f"Denoised cubes: {result.output}")
    log.info("\n".join(lines))
