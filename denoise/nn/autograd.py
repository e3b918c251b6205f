"""The hand-written backward passes of the fast kernels, each the closed form of its gradient.

Autograd differentiates a kernel op by op; where the whole derivative has a short closed form,
or where autograd would hand back a gradient in a slower memory layout than the map's, a
``torch.autograd.Function`` computes it directly. Each is the same function as the plain ops it
replaces (tests/test_kernels.py gradchecks every one of them in float64); the layers of
``denoise.nn`` that use them are the ``fast`` kernels (``denoise.nn.kernels``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable


class ChannelsLastBothWays(torch.autograd.Function):
    """The identity, with the map and its gradient both stored channels-last.

    Forward: ``y = x``; backward: ``dx = dy``, each copied to channels-last order where it is
    not already, so the layers before a reshape see their gradient in the layout of their maps.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class BiasFreeChannelNorm(torch.autograd.Function):
    """``y = x * rsqrt(var_c(x) + eps) * weight``, the bias-free channel norm of TBSN.

    Autograd through the elementwise form makes about fifteen passes over the map in the
    backward; the closed form makes seven. With ``rstd = rsqrt(var_c(x) + eps)``,
    ``xhat = x * rstd``, ``a = g * weight`` and ``s = mean_c(a * xhat)``:
    ``dx = rstd * (a - (xhat - mean_c(x) * rstd) * s)`` (the mean's own term vanishes because the
    centred map sums to zero over channels) and ``dweight = sum_{b,h,w}(g * xhat)``. The variance
    is the mean of squared deviations from the mean, so features with a large mean keep their
    float32 accuracy (no ``E[x^2] - E[x]^2`` cancellation).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        rstd = torch.rsqrt((x - mean).square_().mean(dim=1, keepdim=True).add_(eps))
        xhat = x * rstd
        ctx.save_for_backward(xhat, rstd, mean * rstd, weight)
        return xhat * weight[:, None, None]

    @staticmethod
    @once_differentiable  # the saved tensors carry no graph of their own
    def backward(ctx, grad: torch.Tensor):
        xhat, rstd, centre, weight = ctx.saved_tensors
        grad_weight = (grad * xhat).sum(dim=(0, 2, 3)) if ctx.needs_input_grad[1] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            scaled = grad * weight[:, None, None]
            along = (scaled * xhat).mean(dim=1, keepdim=True)
            grad_x = scaled.sub_((xhat - centre).mul_(along)).mul_(rstd)
        return grad_x, grad_weight, None


class RowGram(torch.autograd.Function):
    """``G = q @ k^T`` over the last axis, whose input gradients keep the inputs' memory order.

    ``dq = dG @ k`` and ``dk = dG^T @ q``. On a channels-last map, q and k are (..., c, n) views
    with the channel axis innermost in memory; autograd's matmul backward writes their gradients
    (..., c, n)-contiguous, the NCHW order, which the depthwise conv before them then runs its
    backward on. Here each gradient is computed as its transpose, ``dq^T = k^T @ dG^T``, written
    (..., n, c)-contiguous and handed back as a transposed view: channels-last again.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(q, k)
        return q @ k.transpose(-2, -1)

    @staticmethod
    @once_differentiable  # the saved tensors carry no graph of their own
    def backward(ctx, grad: torch.Tensor):
        q, k = ctx.saved_tensors
        grad_q = (k.transpose(-2, -1) @ grad.transpose(-2, -1)).transpose(-2, -1)
        grad_k = (q.transpose(-2, -1) @ grad).transpose(-2, -1)
        return grad_q, grad_k


class KeyWindows(torch.autograd.Function):
    """``F.unfold(t, window + 2 * halo, padding=halo, stride=window)`` as (b*m*y*x, d, ky*kx).

    The zero-padded key window of every query window of M-WSA, for ``m`` heads of ``d``
    channels. Forward: strided views of the padded map, copied once, a faster forward than
    ``F.unfold``'s. Backward: every window position adds its gradient back to the pixel it
    copied, which is exactly ``F.fold`` (col2im) with the same geometry: ``F.unfold``'s own
    backward, and faster than autograd's through the views.
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor, heads: int, window: int, halo: int) -> torch.Tensor:
        key_window = window + 2 * halo
        ctx.geometry = (heads, window, halo, tuple(t.shape[-2:]))
        if torch.compiler.is_compiling():
            # torch 2.13's inductor (CPU, two threads) corrupts the heap in a training graph
            # that takes the views (tests/test_fast_layers.py compiles M-WSA); F.unfold it compiles.
            windows = F.unfold(t, key_window, padding=halo, stride=window)
            return rearrange(windows, "b (m d kk) n -> (b m n) d kk", m=heads, kk=key_window**2)
        views = F.pad(t, (halo, halo, halo, halo)).unfold(2, key_window, window).unfold(3, key_window, window)
        return rearrange(views, "b (m d) y x ky kx -> (b m y x) d (ky kx)", m=heads)

    @staticmethod
    @once_differentiable  # the backward is linear in the gradient and saves no tensors
    def backward(ctx, grad: torch.Tensor):
        heads, window, halo, (height, width) = ctx.geometry
        windows = (height // window) * (width // window)
        columns = rearrange(grad, "(b m n) d kk -> b (m d kk) n", m=heads, n=windows)
        return F.fold(columns, (height, width), window + 2 * halo, padding=halo, stride=window), None, None, None
