"""LightningModules and callbacks."""

from denoise.lit.blind_spot import BlindSpotModule
from denoise.lit.callbacks import ValidationPanels

__all__ = ["BlindSpotModule", "ValidationPanels"]
