"""Pure tensor functions with no state."""

from denoise.ops.inference import InferenceSettings, Progress, blind_spot_denoise, single_pass_denoise
from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.ops.pd import first_sub_image, pd_down, pd_up
from denoise.ops.phase import phase_merge, phase_pixel_shuffle, phase_pixel_unshuffle, phase_split
from denoise.ops.r3 import r3_refine

__all__ = [
    "InferenceSettings",
    "Progress",
    "blind_spot_denoise",
    "crop_to",
    "first_sub_image",
    "pad_to_multiple",
    "pd_down",
    "pd_up",
    "phase_merge",
    "phase_pixel_shuffle",
    "phase_pixel_unshuffle",
    "phase_split",
    "r3_refine",
    "single_pass_denoise",
]
