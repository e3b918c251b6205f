"""Checks of the data against the configuration, each failing with one line that says what to change."""

from __future__ import annotations

import numpy as np
import torch

from denoise.errors import DataError


def check_channels(datamodule_in_channels: int, net_in_channels: int) -> None:
    """The network must take as many channels as the data have (3 for sRGB, the band count for HSI)."""
    if int(datamodule_in_channels) != int(net_in_channels):
        raise DataError(
            f"the data have {datamodule_in_channels} channels but model.net.in_channels={net_in_channels}; "
            f"set model.net.in_channels={datamodule_in_channels} (hyperspectral data: data.bands={datamodule_in_channels} "
            f"with model.net.in_channels=${{data.bands}})"
        )


def check_crop_fits(name: str, height: int, width: int, crop_size: int) -> None:
    if height < crop_size or width < crop_size:
        raise DataError(
            f"{name}: {height}x{width} is smaller than data.crop_size={crop_size}; lower data.crop_size "
            f"(a multiple of model.train_pd.factor) or remove the file"
        )


def check_finite(
    array: np.ndarray | torch.Tensor, name: str, remedy: str = "fix the file or set data.skip_bad=true to skip it"
) -> None:
    """DataError naming ``name`` when the array holds NaN or Inf values (integer samples never do)."""
    if isinstance(array, torch.Tensor):
        bad = array.numel() - int(torch.isfinite(array).sum()) if array.is_floating_point() else 0
    else:
        bad = array.size - int(np.count_nonzero(np.isfinite(array))) if array.dtype.kind == "f" else 0
    if bad:
        raise DataError(f"{name}: {bad} NaN or Inf values; {remedy}")
