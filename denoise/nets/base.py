"""What every network of ``denoise.nets`` is: (B, C, H, W) -> (B, C, H, W) for any H, W.

A network pads its input to ``size_multiple`` inside and crops the output back, so the code that
runs it (validation, tiling, the CLI) needs to know only two numbers: ``in_channels`` (C) and
``size_multiple`` (where tiles must start to see what the whole image sees). A subclass sets both
and writes :meth:`forward_padded`, the network on sides that are multiples of ``size_multiple``.
"""

from __future__ import annotations

from typing import Annotated

import torch
from torch import nn

from denoise.ops.padding import crop_to, pad_to_multiple
from denoise.rules import checked, integer


def full_precision(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` in the layer's own precision, also under autocast: for a network's output layer.

    Under bf16 autocast the last layer would write the image itself in bf16, whose 8-bit mantissa
    rounds a value to 1/256 of its size: a whole 8-bit level above 128 on TBSN's 0-255 scale, half
    a level at mid-grey on a 0-1 scale. Measured on the paper TBSN's PD 2 pass over four real SIDD
    blocks, that rounding is most of bf16's distance from float32 (0.14-0.40 levels RMS, 0.04-0.14
    with the output layer in float32); the layer itself is a small share of the network's work.
    Without autocast (float32, float64 tests) it is just ``layer(x)``.
    """
    if not autocast_enabled(x.device.type):
        return layer(x)
    with torch.autocast(device_type=x.device.type, enabled=False):
        return layer(x.to(layer.weight.dtype))


def autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 asks per device
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def network_name(net: nn.Module) -> str:
    """What a network's error lines start with: its class, since the same network may sit at
    ``model.net``, ``model.student`` or ``model.net.spatial``."""
    return f"{type(net).__name__}: "


class Network(nn.Module):
    """Checks the channels, pads to ``size_multiple``, runs :meth:`forward_padded`, crops back."""

    # Reflection keeps every copied pixel on its own phase for a stride-2 blind spot; a network
    # with other phase strides pads with zeros instead (see DBSN).
    padding_mode = "reflect"
    # What output (p, c) may not read: "pixel" (every channel of input pixel p: the blind-spot
    # networks of sRGB photos), "pixel_band" (only channel c of pixel p: a hyperspectral network
    # that reads the other bands of p), or None (an ordinary network). The blind-spot tests and
    # the training recipes rely on it.
    blindness: str | None = None

    @checked(network_name)
    def __init__(self, in_channels: Annotated[int, integer(1)], size_multiple: int = 1):
        super().__init__()
        self.in_channels = int(in_channels)
        self.size_multiple = int(size_multiple)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def output_layer(self) -> nn.Conv2d:
        """The last layer, whose output is the network's (before the crop): a network that starts
        a part of itself at zero (SpectralBlindSpotNet's closed-form start) zeroes it."""
        raise NotImplementedError(f"{type(self).__name__} names no output layer")

    def start_from_data(self, noisy: torch.Tensor) -> bool:
        """Fit the parts of the network that have a closed-form start, on the first training batch
        (``noisy`` as the network sees it in training), before the first optimizer step. Returns
        whether anything changed. Most networks have no such part."""
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected {self.in_channels} input channels (in_channels), got {x.shape[1]}"
            )
        height, width = x.shape[-2:]
        padded = pad_to_multiple(x, self.size_multiple, mode=self.padding_mode)
        return crop_to(self.forward_padded(padded), height, width)
