"""Checks that a network is blind at a pixel: used by the tests, and by anyone adding a block.

``input_gradients_at`` is the exact test of a pixel-blind network: in float64 the gradient of output pixel p (all
channels) with respect to input pixel p (all channels) must be exactly zero. It cannot see a
leak through a discrete choice (top-k routing), so ``perturbation_change`` changes x(p) and
measures how far output p moves. A network blind to (pixel, band) pairs only (``blindness ==
"pixel_band"``, the hyperspectral network that reads the other bands of p) is checked band by
band with ``band_jacobian_at``: output (p, b) must have exactly zero gradient with respect to
input (p, b).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Pixel = tuple[int, int]


def probe_pixels(height: int, width: int) -> dict[str, Pixel]:
    """A centre, a border and a corner pixel of an image."""
    return {"centre": (height // 2, width // 2), "border": (0, width // 2 + 1), "corner": (height - 1, width - 1)}


def input_gradients_at(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, pixels: Sequence[Pixel]
) -> list[torch.Tensor]:
    """For each pixel p: d sum_c out[0, c, p] / d x[0], a (C, H, W) tensor."""
    x = x.detach().clone().requires_grad_(True)
    out = net(x)
    grads = []
    for i, (row, col) in enumerate(pixels):
        (grad,) = torch.autograd.grad(out[0, :, row, col].sum(), x, retain_graph=i < len(pixels) - 1)
        grads.append(grad[0])
    return grads


def band_jacobian_at(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, pixel: Pixel
) -> torch.Tensor:
    """J[b] = d out[0, b, p] / d x[0], a (C, C, H, W) tensor: one backward pass per output band."""
    row, col = pixel
    x = x.detach().clone().requires_grad_(True)
    out = net(x)[0, :, row, col]
    rows = [torch.autograd.grad(out[b], x, retain_graph=b < len(out) - 1)[0][0] for b in range(len(out))]
    return torch.stack(rows)


@torch.no_grad()
def perturbation_change(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, pixel: Pixel, amount: float = 10.0
) -> float:
    """Largest change of output pixel p when every channel of input pixel p moves by ``amount``."""
    row, col = pixel
    moved = x.clone()
    moved[:, :, row, col] += amount
    return (net(moved)[:, :, row, col] - net(x)[:, :, row, col]).abs().max().item()
