"""Your own noisy photos in one command: a blind-spot teacher, a distilled student, the denoised images.

``python photos.py data.noisy_dir=my_photos/`` runs three ordinary stages under its run directory,
each of which can be redone alone with the command shown:

1. ``teacher/``: ``python train.py experiment=photos ...`` trains a blind-spot network on the
   photos themselves (PD 5 training, PD 2 + R3 inference) for ``teacher_share`` of the budget;
2. ``student/``: ``python train.py experiment=photos_distill model.teacher_ckpt=teacher/...``
   distils it into a non-blind U-Net for the rest of the budget: no pixel-shuffle grid, one pass;
3. ``denoised/``: ``python predict.py ckpt_path=student/... input=<data.noisy_dir>`` writes every
   photo denoised, in its own format.

The user's overrides go to both training stages, except ``model...`` ones, which are the teacher's
(the student's model is another config group): ``photos.student_overrides`` holds the student's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from denoise.cli.outputs import plan_outputs
from denoise.cli.predict import SUFFIXES, predict
from denoise.cli.train import train
from denoise.data.formats.image_files import probe_image
from denoise.errors import ConfigError, DataError
from denoise.lit import progress
from denoise.lit.checkpointing import last_checkpoint_path
from denoise.lit.progress import clock

log = logging.getLogger(__name__)

STAGE_EXPERIMENTS = {"teacher": "photos", "student": "photos_distill"}


@dataclass
class PhotosResult:
    run_dir: Path
    teacher_ckpt: Path
    student_ckpt: Path
    output: Path | None
    seconds: dict[str, float] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    written: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def max_time(seconds: float) -> str:
    """``trainer.max_time`` as Lightning's DD:HH:MM:SS."""
    seconds = max(1, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def budget_seconds(budget_minutes: float | None, key: str) -> float | None:
    """A training budget in seconds, checked (None: the recipe's own length); ``key`` names it in errors."""
    if budget_minutes is None:
        return None
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)) or budget_minutes <= 0:
        raise ConfigError(f"{key}={budget_minutes!r}: expected a number of minutes > 0, or null")
    return 60.0 * budget_minutes


def stage_budgets(budget_minutes: float | None, teacher_share: float) -> dict[str, str | None]:
    """The teacher's and the student's ``trainer.max_time`` (None: as in their experiment configs)."""
    seconds = budget_seconds(budget_minutes, "photos.budget_minutes")
    if seconds is None:
        return {"teacher": None, "student": None}
    if isinstance(teacher_share, bool) or not isinstance(teacher_share, (int, float)) or not 0 < teacher_share < 1:
        raise ConfigError(f"photos.teacher_share={teacher_share!r}: expected a fraction in (0, 1)")
    return {"teacher": max_time(teacher_share * seconds), "student": max_time((1 - teacher_share) * seconds)}


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(overrides for both stages, overrides for the teacher only) of the user's command line."""
    shared, teacher = [], []
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key.startswith(("photos.", "hydra.", "hydra/")) or key in ("photos", "experiment"):
            continue
        (teacher if key == "model" or key.startswith(("model.", "model/")) else shared).append(override)
    return shared, teacher


def stage_config(stage: str, run_dir: Path, overrides: list[str], budget: str | None) -> DictConfig:
    folder = run_dir / stage
    extra = [f"trainer.max_time={budget}"] if budget else []
    return compose(
        "train",
        overrides=[f"experiment={STAGE_EXPERIMENTS[stage]}", *overrides, *extra,
                   f"paths.output_dir={folder}"],
    )


def photo_files(noisy_dir: str | None) -> list[Path]:
    """The images of ``data.noisy_dir`` that predict.py will denoise (none: the datamodule says why)."""
    folder = Path(str(noisy_dir)).expanduser() if noisy_dir else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def smallest_photo(files: list[Path]) -> tuple[Path, int, int] | None:
    """(file, height, width) of the photo with the smallest side; unreadable files are left to the
    datamodule, which names them."""
    sizes = []
    for path in files:
        try:
            info = probe_image(path)
        except DataError:
            continue
        sizes.append((min(info.height, info.width), path, info.height, info.width))
    return min(sizes)[1:] if sizes else None


def crop_multiple(stage: str, cfg: DictConfig) -> int:
    """What a stage's crop must be a multiple of: the teacher's training PD factor (its sub-images
    are crop / factor pixels); the student's crops go through the teacher's inference PD."""
    if stage == "teacher":
        return int(cfg.model.train_pd.factor)
    return int((cfg.model.get("teacher_inference") or {}).get("pd_factor") or 1)


def fitted_crop(stage: str, cfg: DictConfig, smallest: tuple[Path, int, int] | None) -> int | None:
    """The largest crop that fits the smallest photo, when the recipe's ``data.crop_size`` does not
    (None: the recipe's fits)."""
    if smallest is None or min(smallest[1:]) >= cfg.data.crop_size:
        return None
    path, height, width = smallest
    multiple = crop_multiple(stage, cfg)
    crop = min(height, width) // multiple * multiple
    if crop < multiple:
        raise DataError(f"data.noisy_dir: {path.name} is {height}x{width}, too small to train the {stage} on "
                        f"(at least {multiple} pixels a side); remove it")
    log.info(f"The smallest photo ({path.name}) is {height}x{width}: the {stage} trains on {crop}x{crop} crops "
             f"instead of {cfg.data.crop_size} (data.crop_size={crop}, a multiple of {multiple})")
    return crop


def train_stage(stage: str, run_dir: Path, overrides: list[str], budget: str | None,
                smallest: tuple[Path, int, int] | None) -> DictConfig:
    """The stage's composed config, its crop fitted to the photos unless the command line sets one."""
    cfg = stage_config(stage, run_dir, overrides, budget)
    user_crop = any(o.lstrip("+~").split("=", 1)[0] == "data.crop_size" for o in overrides)
    crop = None if user_crop else fitted_crop(stage, cfg, smallest)
    if crop is not None:
        cfg = stage_config(stage, run_dir, [*overrides, f"data.crop_size={crop}"], budget)
    return cfg


def checked_output(noisy_dir: str | None, files: list[Path], output: str | Path) -> Path:
    """The output folder, once predict.py's checks pass for every photo: minutes of training are
    not spent on images that could not be written."""
    if files:
        plan_outputs(Path(str(noisy_dir)).expanduser(), files, str(output), recursive=False, key="photos.output")
    return Path(str(output)).expanduser()


def photos(cfg: DictConfig, overrides: list[str] | None = None) -> PhotosResult:
    """Run the three stages for the composed ``photos.yaml`` config ``cfg`` and the command line's
    ``overrides`` (by default those of the running Hydra app). Every output is checked before the
    training starts; DataError at the end, naming them, if any photo was not written."""
    settings = cfg.photos
    budget_minutes = settings.get("budget_minutes")
    budgets = stage_budgets(budget_minutes, settings.teacher_share)  # its one default: configs/photos.yaml
    run_dir = Path(cfg.paths.output_dir)
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    shared, teacher_only = split_overrides(overrides)
    result = PhotosResult(run_dir, last_checkpoint_path(run_dir / "teacher"),
                          last_checkpoint_path(run_dir / "student"), None)
    noisy_dir = cfg.data.get("noisy_dir")
    files = photo_files(noisy_dir)
    output = checked_output(noisy_dir, files, settings.get("output") or run_dir / "denoised")
    smallest = smallest_photo(files)
    deadline = time.monotonic() + 60 * budget_minutes if budget_minutes else None
    budget_seconds = 60 * budget_minutes if budget_minutes else None

    teacher_cfg = train_stage("teacher", run_dir, [*shared, *teacher_only], budgets["teacher"], smallest)
    run_stage(result, "teacher", lambda: train(teacher_cfg), deadline, budget_seconds)
    if not result.teacher_ckpt.is_file():
        raise ConfigError(f"the teacher stage wrote no {result.teacher_ckpt}: the student needs it; keep a "
                          f"callbacks group that saves checkpoints (callbacks=default)")

    student_overrides = [*shared, *list(settings.get("student_overrides") or []),
                         f"model.teacher_ckpt={result.teacher_ckpt}"]
    student_cfg = train_stage("student", run_dir, student_overrides, budgets["student"], smallest)
    run_stage(result, "student", lambda: train(student_cfg), deadline, budget_seconds)

    if noisy_dir:
        denoised = run_stage(result, "denoise", lambda: predict(compose("predict", overrides=[
            f"ckpt_path={result.student_ckpt}", f"input={noisy_dir}", f"output={output}"])))
        result.output, result.written, result.failed = output, len(denoised["written"]), denoised["failed"]
    (run_dir / "photos.json").write_text(json.dumps(
        {"teacher_ckpt": str(result.teacher_ckpt), "student_ckpt": str(result.student_ckpt),
         "output": str(result.output) if result.output else None, "seconds": result.seconds,
         "steps": result.steps, "metrics": result.metrics, "failed": result.failed}, indent=2))
    _summary(result)
    if result.failed:
        raise DataError(f"{len(result.failed)} photo(s) not written: " + "; ".join(
            f"{name}: {reason}" for name, reason in result.failed.items()) + f" (the others are in {output})")
    return result


def run_stage(result: PhotosResult, name: str, work: Callable[[], Any], deadline: float | None = None,
              budget: float | None = None) -> Any:
    """``work()`` as the stage ``name`` (its progress line, its time and steps in ``result``)."""
    started = time.perf_counter()
    with progress.stage(name, deadline, budget) as stage:
        outcome = work()
    result.seconds[name] = time.perf_counter() - started
    if name in STAGE_EXPERIMENTS:
        result.metrics[name], result.steps[name] = outcome, stage.steps
    return outcome


def _summary(result: PhotosResult) -> None:
    """Where the photos are, what each stage took, and the delivered model."""
    lines = []
    if result.output is not None:
        total = result.written + len(result.failed)
        lines.append(f"Denoised photos: {result.written} of {total} in {result.output}")
    stages = [f"{name} {clock(seconds)}" + (f" ({result.steps[name]} steps)" if name in result.steps else "")
              for name, seconds in result.seconds.items()]
    lines.append(f"Time: {', '.join(stages)}; total {clock(sum(result.seconds.values()))}")
    student = result.metrics.get("student", {})
    if "val/psnr" in student:
        lines.append(f"Validation PSNR of the student: noisy {student.get('val/psnr_noisy', float('nan')):.2f} dB "
                     f"-> {student['val/psnr']:.2f} dB")
    lines.append(f"Student (the delivered model, for predict.py): {result.student_ckpt}")
    lines.append(f"Run directory (each stage's logs, photos.json): {result.run_dir}")
    log.info("\n".join(lines))
