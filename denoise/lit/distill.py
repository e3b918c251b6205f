"""Distillation (TBSN, Li, Zhang, Zuo, AAAI 2025): a frozen blind-spot teacher trains a non-blind student.

One training step: noisy crop -> teacher (PD factor 2, then one full-resolution R3 pass, no grad)
-> target; L1(student(noisy crop), target). The student sees the whole image at once, so it is
fast at test time: ``denoise(noisy)`` is one pass of the student (tiled and self-ensembled when the
inference settings ask for it). The teacher is loaded from ``teacher_ckpt`` only for training and is
not part of the student's checkpoint: ``load_model(student.ckpt)`` needs no teacher.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
import torch.nn.functional as F

from denoise.data.checks import check_channels
from denoise.errors import ConfigError
from denoise.lit.base import DenoisingModule, plain
from denoise.lit.checkpoint_format import upgrade_network_config
from denoise.lit.loading import load_model
from denoise.lit.schedule import ScheduleSettings
from denoise.ops import InferenceSettings, Progress, single_pass_denoise

# The teacher's protocol of the official distillation code: PD 2 then one R3 pass (p = 0.16).
# TBSN: PD 2, then one full-resolution pass on the unpadded image. ``model.teacher_inference``
# composes these (its other settings are InferenceSettings' defaults).
TEACHER_INFERENCE = {"pd_factor": 2, "r3_passes": 1, "r3_p": 0.16, "r3_pad": 0, "tile_size": None}
# The student is non-blind: one full-resolution pass, no PD, no R3, whatever its config says.
STUDENT_FORCED = {"pd_factor": 1, "r3_passes": 0}
# What the student's ``model.inference`` composes: the settings a single pass reads.
STUDENT_INFERENCE_KEYS = (
    "ensemble", "tile_size", "tile_overlap", "precision", "smooth_chroma", "restore_detail", "nonlocal_blend",
    "edge_wiener_passes",
)


class DistillationModule(DenoisingModule):
    """Trains ``student`` (a config with ``_target_``) on the outputs of a frozen blind-spot teacher."""

    network_key = "student"

    def __init__(
        self,
        student: dict,
        optimizer: dict,
        teacher_ckpt: str | None = None,
        scheduler: Annotated[dict | None, ScheduleSettings] = None,
        teacher_inference: Annotated[dict | None, InferenceSettings] = None,
        inference: Annotated[dict | None, InferenceSettings] = None,
        data_scale: float = 1.0,
        val_protocol: str = "srgb",
        compile: bool = False,
    ):
        student, optimizer, scheduler = upgrade_network_config(plain(student)), plain(optimizer), plain(scheduler)
        super().__init__(student, data_scale, val_protocol)
        teacher_inference, inference = plain(teacher_inference), plain(inference)
        self.save_hyperparameters(
            {"student": student, "optimizer": optimizer, "teacher_ckpt": teacher_ckpt, "scheduler": scheduler,
             "teacher_inference": teacher_inference, "inference": inference, "data_scale": data_scale,
             "val_protocol": val_protocol, "compile": compile}
        )
        self.teacher_settings = InferenceSettings.from_config(
            {**TEACHER_INFERENCE, **(teacher_inference or {})}
        )
        self.inference = InferenceSettings.from_config({**(inference or {}), **STUDENT_FORCED})
        self.__dict__["teacher"] = None  # not a submodule: never trained, never saved with the student

    @torch.no_grad()
    def denoise(
        self, noisy: torch.Tensor, settings: InferenceSettings | None = None, progress: Progress | None = None
    ) -> torch.Tensor:
        """One student pass on (B, C, H, W) images in [0, 1] (tiling / self-ensemble / bf16 from settings)."""
        return single_pass_denoise(self, noisy, settings or self.inference, progress)

    # --- the teacher -----------------------------------------------------------------------------
    def load_teacher(self) -> None:
        path = self.hparams.teacher_ckpt
        if not path:
            raise ConfigError("model.teacher_ckpt is not set: give the blind-spot teacher's checkpoint, "
                              "e.g. model.teacher_ckpt=logs/train/runs/<run>/checkpoints/last.ckpt")
        teacher = load_model(path, key="model.teacher_ckpt")
        teacher.requires_grad_(False)
        self.__dict__["teacher"] = teacher

    @torch.no_grad()
    def teacher_targets(self, noisy: torch.Tensor) -> torch.Tensor:
        teacher = self.teacher.to(noisy.device)
        # A fresh R3 mask at every step (the official code draws one per step too).
        settings = dataclasses.replace(self.teacher_settings, r3_seed=int(self.global_step))
        return teacher.denoise(noisy, settings)

    # --- training --------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        noisy = batch["noisy"]
        target = self.teacher_targets(noisy)
        loss = self.check_finite(F.l1_loss(self(noisy), target))
        self.log("train/loss", loss, prog_bar=True, batch_size=noisy.shape[0])
        return loss

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.load_teacher()
            check_channels(self.teacher.in_channels, self.in_channels)
            if self.hparams.compile:
                self.compile_network(self.net)
        super().setup(stage)
