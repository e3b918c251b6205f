"""Tensor operations on images, and whole-image inference built from them.

Pure functions of tensors: phase split / merge (``phase.py``), PD and its padding (``pd.py``),
padding to a multiple (``padding.py``), R3 (``r3.py``), tiling (``tiling.py``), the x8
self-ensemble (``ensemble.py``), chroma smoothing (``chroma.py``), detail restoration
(``detail.py``). Inference on top of them: the settings (``settings.py``, a frozen dataclass),
the precision a pass runs in and what ``auto`` picks on this machine (``precision.py``), one
network pass (``network_pass.py``), the progress counters the protocols report to
(``progress.py``: counts of network calls, their only state), the protocols themselves
(``inference.py``) and their names (``protocols.py``).
"""

from denoise.ops.inference import blind_spot_denoise, single_pass_denoise
from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.ops.pd import first_sub_image, pd_down, pd_up
from denoise.ops.phase import phase_merge, phase_pixel_shuffle, phase_pixel_unshuffle, phase_split
from denoise.ops.progress import Progress
from denoise.ops.r3 import r3_refine
from denoise.ops.settings import InferenceSettings

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
