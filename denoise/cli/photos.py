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
from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from denoise.cli.predict import predict
from denoise.cli.train import train
from denoise.errors import ConfigError

log = logging.getLogger(__name__)

STAGE_EXPERIMENTS = {"teacher": "photos", "student": "photos_distill"}


@dataclass
class PhotosResult:
    run_dir: Path
    teacher_ckpt: Path
    student_ckpt: Path
    output: Path | None
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def max_time(seconds: float) -> str:
    """``trainer.max_time`` as Lightning's DD:HH:MM:SS."""
    seconds = max(1, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def stage_budgets(budget_minutes: float | None, teacher_share: float) -> dict[str, str | None]:
    """The teacher's and the student's ``trainer.max_time`` (None: as in their experiment configs)."""
    if budget_minutes is None:
        return {"teacher": None, "student": None}
    if isinstance(budget_minutes, bool) or not isinstance(budget_minutes, (int, float)) or budget_minutes <= 0:
        raise ConfigError(f"photos.budget_minutes={budget_minutes!r}: expected a number of minutes > 0, or null")
    if isinstance(teacher_share, bool) or not isinstance(teacher_share, (int, float)) or not 0 < teacher_share < 1:
        raise ConfigError(f"photos.teacher_share={teacher_share!r}: expected a fraction in (0, 1)")
    seconds = 60.0 * budget_minutes
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


def photos(cfg: DictConfig, overrides: list[str] | None = None) -> PhotosResult:
    """Run the three stages for the composed ``photos.yaml`` config ``cfg`` and the command line's
    ``overrides`` (by default those of the running Hydra app)."""
    settings = cfg.photos
    budgets = stage_budgets(settings.get("budget_minutes"), settings.get("teacher_share", 0.6))
    run_dir = Path(cfg.paths.output_dir)
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    shared, teacher_only = split_overrides(overrides)
    result = PhotosResult(run_dir, run_dir / "teacher" / "checkpoints" / "last.ckpt",
                          run_dir / "student" / "checkpoints" / "last.ckpt", None)

    started = time.perf_counter()
    teacher_cfg = stage_config("teacher", run_dir, [*shared, *teacher_only], budgets["teacher"])
    result.metrics["teacher"] = train(teacher_cfg)
    result.seconds["teacher"] = time.perf_counter() - started
    if not result.teacher_ckpt.is_file():
        raise ConfigError(f"the teacher stage wrote no {result.teacher_ckpt}: the student needs it; keep a "
                          f"callbacks group that saves checkpoints (callbacks=default)")

    started = time.perf_counter()
    student_overrides = [*shared, *list(settings.get("student_overrides") or []),
                         f"model.teacher_ckpt={result.teacher_ckpt}"]
    result.metrics["student"] = train(stage_config("student", run_dir, student_overrides, budgets["student"]))
    result.seconds["student"] = time.perf_counter() - started

    noisy_dir = cfg.data.get("noisy_dir")
    if noisy_dir:
        started = time.perf_counter()
        output = Path(settings.get("output") or run_dir / "denoised")
        predict(compose("predict", overrides=[f"ckpt_path={result.student_ckpt}", f"input={noisy_dir}",
                                              f"output={output}"]))
        result.output = output
        result.seconds["denoise"] = time.perf_counter() - started
    (run_dir / "photos.json").write_text(json.dumps(
        {"teacher_ckpt": str(result.teacher_ckpt), "student_ckpt": str(result.student_ckpt),
         "output": str(result.output) if result.output else None, "seconds": result.seconds,
         "metrics": result.metrics}, indent=2))
    _summary(result)
    return result


def _summary(result: PhotosResult) -> None:
    times = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in result.seconds.items())
    lines = [f"Photos run directory: {result.run_dir} ({times})", f"Student (the delivered model): {result.student_ckpt}"]
    student = result.metrics.get("student", {})
    if "val/psnr" in student:
        lines.append(f"Validation PSNR of the student: noisy {student.get('val/psnr_noisy', float('nan')):.2f} dB "
                     f"-> {student['val/psnr']:.2f} dB")
    if result.output is not None:
        lines.append(f"Denoised images: {result.output}")
    log.info("\n".join(lines))
