"""LightningModules, callbacks, and ``load_model`` (any module from its checkpoint alone)."""

from denoise.lit.base import DenoisingModule, NonFiniteLossError
from denoise.lit.blind_spot import BlindSpotModule
from denoise.lit.callbacks import FinalValidation, LastCheckpoint, Preemption, ValidationPanels
from denoise.lit.distill import DistillationModule
from denoise.lit.divergence import DivergenceGuard
from denoise.lit.loading import load_model

__all__ = [
    "BlindSpotModule", "DenoisingModule", "DistillationModule", "DivergenceGuard", "FinalValidation",
    "LastCheckpoint", "NonFiniteLossError", "Preemption",
    "ValidationPanels", "load_model",
]
