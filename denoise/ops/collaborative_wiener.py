"""Collaborative Wiener filtering on edges: sharp edges back from the noisy photo, guided by the denoised one.

A student distilled from a blind-spot teacher softens edges: the blind spot cannot see the pixel it
predicts, and the teacher's targets average over what it cannot tell apart. The second stage of BM3D
(Dabov, Foi, Katkovnik, Egiazarian, TIP 2007) restores them from the noisy photo with a pilot
estimate to guide it. This module runs that stage with the denoised photo as the pilot:

1. **Grouping.** For reference patches on a grid, the ``group_size`` patches most like each one in
   the pilot's luma, within ``search_radius`` pixels, are stacked into a group.
2. **Transform.** Each group of the noisy photo and of the pilot goes through a separable 3-D
   orthonormal DCT (the 2-D DCT of each patch, then a DCT across the group).
3. **Empirical Wiener.** Each noisy coefficient is scaled by ``pilot^2 / (pilot^2 + noise^2)``:
   structure the pilot holds survives with the noisy photo's sharpness, and what the pilot does not
   hold is dropped with the noise.
4. **Aggregation.** Each group's patches are added back where they came from, weighted by the
   inverse of the noise variance left in the group (BM3D's weights), and averaged.

Camera noise is not white: it is correlated over a few pixels. The noise variance of each 2-D DCT
coefficient is read from the photo itself: the robust variance (1.4826 x the median absolute
deviation, squared) of that coefficient over the patches of ``noisy - pilot``. The Wiener gains use
``noise_margin`` times it: the pilot is an estimate, not the clean photo, and gains computed from
its coefficients as if they were exact keep too much noise (measured: 1.5 on the SIDD and CC15
photos; docs/photos.md). Only the luma of the opponent space of :mod:`denoise.ops.chroma` is filtered.

Only edges are given back. Elsewhere the pilot is better than a Wiener estimate (flat areas keep
less noise in the pilot, and the student's texture is not a group's). The result is the pilot plus
``gate * (wiener - pilot)``, where ``gate = clip(g / strong, 0, 1)^2``, ``g`` is the pilot luma's
Sobel gradient magnitude smoothed at ``gate_blur`` pixels and ``strong`` the larger of its
``edge_quantile`` quantile and ``edge_floor`` times the luma's noise level (the robust standard
deviation of ``noisy - pilot``; a step of height h has a Sobel magnitude of about 4 h): 1 on the
strongest edges, falling quadratically below. Without the floor, the strongest tenth of the
gradients of a dark, noisy photo includes ripples of its flat areas, which the filter turns into
blotches (measured: docs/photos.md). Only reference patches on which
the gate reaches ``gate_floor`` are grouped, which keeps the cost to the edges.

It runs on the whole image, in strips of ``strip_rows`` rows. It is not part of any paper's
protocol; the photos recipe can run it last (:func:`denoise.ops.inference.finish`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from denoise.ops.chroma import OPPONENT
from denoise.ops.detail import gaussian_blur, subsampled_quantile, window_sums
from denoise.ops.nonlocal_means import MAD_TO_SIGMA, residual_sigmas


@dataclass(frozen=True)
class CollaborativeWiener:
    patch_size: int = 8         # pixels per patch side (BM3D: 8)
    group_size: int = 16        # patches per group (BM3D's Wiener stage: 32 at most; 16 here)
    search_radius: int = 7      # pixels: candidates lie within this distance in x and in y
    search_stride: int = 1      # pixels between candidate positions
    reference_stride: int = 3   # pixels between reference patches (BM3D: 3)
    noise_margin: float = 1.5   # the Wiener gains use this multiple of the measured noise variance
    window_beta: float = 2.0    # Kaiser window over each patch at aggregation (BM3D: 2; 0: flat)
    edge_quantile: float = 0.9  # the gate is 1 on edges stronger than this quantile of the gradient
    edge_floor: float = 3.0     # ... and than this many times the luma's noise level
    gate_blur: float = 1.5      # pixels: Gaussian sigma of the gradient magnitude the gate is read from
    gate_floor: float = 0.02    # reference patches whose gate stays below this are not grouped
    strip_rows: int = 256       # rows computed at once

    def __post_init__(self) -> None:
        for name, least in (("patch_size", 2), ("group_size", 1), ("search_radius", 0), ("search_stride", 1),
                            ("reference_stride", 1), ("strip_rows", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name}={value!r}: expected an integer >= {least}")
        if not self.edge_floor >= 0:
            raise ValueError(f"edge_floor={self.edge_floor!r}: expected a number >= 0")
        if not 0 < self.edge_quantile < 1:
            raise ValueError(f"edge_quantile={self.edge_quantile!r}: expected a number in (0, 1)")
        if not self.noise_margin > 0:
            raise ValueError(f"noise_margin={self.noise_margin!r}: expected a number > 0")
        if not self.window_beta >= 0:
            raise ValueError(f"window_beta={self.window_beta!r}: expected a number >= 0")
        if not self.gate_blur >= 0:
            raise ValueError(f"gate_blur={self.gate_blur!r}: expected a number >= 0")
        if not 0 <= self.gate_floor < 1:
            raise ValueError(f"gate_floor={self.gate_floor!r}: expected a number in [0, 1)")


def sharpen_edges(
    noisy: torch.Tensor, denoised: torch.Tensor, options: CollaborativeWiener | None = None
) -> torch.Tensor:
    """Edges of (B, C, H, W) ``denoised`` given back from ``noisy`` by collaborative Wiener filtering:
    the luma of RGB images (their chroma as given), the one channel of grey images; other channel
    counts as given."""
    options = options or CollaborativeWiener()
    if noisy.shape != denoised.shape or noisy.dim() != 4:
        raise ValueError(f"sharpen_edges: noisy {tuple(noisy.shape)} and denoised {tuple(denoised.shape)} "
                         "must be the same (B, C, H, W) shape")
    channels = denoised.shape[1]
    if channels not in (1, 3) or min(denoised.shape[-2:]) < options.patch_size:
        return denoised  # no luma to sharpen, or smaller than a patch: nothing to group
    noisy = noisy.to(denoised.dtype)
    # The Wiener estimate is made on the luma alone: measured on real photos, filtering the chroma
    # the same way cost PSNR (docs/photos.md); the photos recipe smooths the chroma before.
    opponent = OPPONENT.to(denoised) if channels == 3 else torch.ones(1, 1).to(denoised)
    results = []
    for n, d in zip(torch.einsum("oc,bchw->bohw", opponent, noisy), torch.einsum("oc,bchw->bohw", opponent, denoised)):
        luma = d[:1]
        gate = edge_gate(luma[0], options, noise_level=residual_sigmas(n[:1], luma)[0])
        wiener = collaborative_wiener(n[:1], luma, gate, options)
        results.append(torch.cat([luma + gate * (wiener - luma), d[1:]]))
    return torch.einsum("oc,bohw->bchw", opponent, torch.stack(results))  # the inverse: the transpose


def edge_gate(luma: torch.Tensor, options: CollaborativeWiener, noise_level: float = 0.0) -> torch.Tensor:
    """(H, W) weights in [0, 1]: 1 on the strongest edges of ``luma``, falling quadratically below;
    ``noise_level``: the standard deviation of the noise taken out of ``luma``."""
    image = luma[None, None]
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=luma.dtype, device=luma.device)
    kernels = torch.stack([sobel, sobel.T])[:, None]
    gradient = F.conv2d(F.pad(image, (1,) * 4, mode="replicate"), kernels).square().sum(1, keepdim=True).sqrt()
    if options.gate_blur > 0:
        gradient = gaussian_blur(gradient, options.gate_blur)
    # In a dark, noisy photo the strongest tenth of the gradients can be mere ripples, which the
    # Wiener filter would make into blotches: an edge must also stand out of the noise.
    strong = max(float(subsampled_quantile(gradient, options.edge_quantile)), options.edge_floor * noise_level)
    # Gradients at the level of rounding (a flat image) are no edges.
    rounding = 64 * torch.finfo(luma.dtype).eps * max(1.0, float(luma.abs().max()))
    if not strong > rounding:
        return torch.zeros_like(luma)
    return (gradient[0, 0] / strong).clamp(max=1).square()


def dct_matrix(size: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The orthonormal DCT-II as a (size, size) matrix: rows are frequencies."""
    k = torch.arange(size, dtype=torch.float64)[:, None]
    i = torch.arange(size, dtype=torch.float64)[None]
    matrix = torch.cos(math.pi * (2 * i + 1) * k / (2 * size)) * math.sqrt(2 / size)
    matrix[0] /= math.sqrt(2)
    return matrix.to(dtype=dtype, device=device)


def patch_noise_variance(noisy: torch.Tensor, pilot: torch.Tensor, size: int) -> torch.Tensor:
    """(C, size, size) noise variance of each 2-D DCT coefficient of ``size`` patches of (C, H, W)
    ``noisy``: the robust variance of that coefficient over the non-overlapping patches of ``noisy - pilot``."""
    _, height, width = noisy.shape
    residual = (noisy - pilot)[:, : height - height % size, : width - width % size]
    patches = rearrange(residual, "c (y p) (x q) -> c (y x) p q", p=size, q=size)
    basis = dct_matrix(size, noisy.dtype, noisy.device)
    coefficients = basis @ patches @ basis.T
    centred = coefficients - coefficients.median(dim=1, keepdim=True).values
    return (MAD_TO_SIGMA * centred.abs().median(dim=1).values).square()


def collaborative_wiener(
    noisy: torch.Tensor, pilot: torch.Tensor, gate: torch.Tensor, options: CollaborativeWiener
) -> torch.Tensor:
    """The collaborative Wiener estimate of (C, H, W) ``noisy`` where ``gate`` reaches the floor,
    grouped on ``pilot``'s first channel; ``pilot`` where no group reaches."""
    variance = options.noise_margin * patch_noise_variance(noisy, pilot, options.patch_size)
    height, width = noisy.shape[-2:]
    size, radius = options.patch_size, options.search_radius
    # References: on one grid over the whole image (strips take their rows of it), where the gate
    # reaches the floor somewhere on the patch.
    gate_reach = F.max_pool2d(gate[None, None], size, stride=1)[0, 0]
    ref_y, ref_x = torch.meshgrid(grid(0, height - size, options.reference_stride, gate.device),
                                  grid(0, width - size, options.reference_stride, gate.device), indexing="ij")
    keep = gate_reach[ref_y, ref_x] >= options.gate_floor
    ref_y, ref_x = ref_y[keep], ref_x[keep]
    # A group's patches lie within the search radius of its reference: the groups that add to rows
    # top..bottom - 1 are those of references within radius + size of them, and their candidates
    # lie within 2 radius + size.
    halo = 2 * radius + size
    strips = []
    for top in range(0, height, options.strip_rows):
        bottom = min(height, top + options.strip_rows)
        start, stop = max(0, top - halo), min(height, bottom + halo)
        mine = (ref_y > top - size - radius) & (ref_y < bottom + radius)
        strip = collaborative_wiener_whole(
            noisy[:, start:stop], pilot[:, start:stop], variance, ref_y[mine] - start, ref_x[mine], options
        )
        strips.append(strip[:, top - start:bottom - start])
    return torch.cat(strips, dim=-2)


def collaborative_wiener_whole(
    noisy: torch.Tensor, pilot: torch.Tensor, variance: torch.Tensor, ref_y: torch.Tensor, ref_x: torch.Tensor,
    options: CollaborativeWiener,
) -> torch.Tensor:
    """The estimate over the whole of (C, H, W) ``noisy`` from the groups of the reference patches at
    ``(ref_y, ref_x)`` (their top-left corners); ``pilot`` where no group reaches."""
    channels, _, width = noisy.shape
    size, radius = options.patch_size, options.search_radius
    if ref_y.numel() == 0:
        return pilot
    # Candidates: every search_stride-th offset within the radius; those outside the image are never
    # chosen, and at least group_size lie inside it, even at a corner.
    steps = torch.arange(-radius, radius + 1, options.search_stride, device=noisy.device)
    off_y, off_x = (o.flatten() for o in torch.meshgrid(steps, steps, indexing="ij"))
    group_size = min(options.group_size, (radius // options.search_stride + 1) ** 2)
    distances = patch_distances(pilot[0], ref_y, ref_x, off_y, off_x, size)
    noisy_patches = noisy.unfold(1, size, 1).unfold(2, size, 1)     # (C, H-s+1, W-s+1, s, s)
    pilot_patches = pilot.unfold(1, size, 1).unfold(2, size, 1)
    # The 3-D transform as two matrix products: the 2-D DCT of a flattened patch is one product with
    # the Kronecker product of the 1-D DCTs, and the DCT across the group another.
    basis = dct_matrix(size, noisy.dtype, noisy.device)
    patch_basis = torch.kron(basis, basis)  # (s^2, s^2), rows: 2-D frequencies
    group_basis = dct_matrix(group_size, noisy.dtype, noisy.device)
    noise = rearrange(variance, "c p q -> c 1 (p q) 1")
    # Patch borders overlap most and match least: weigh patch centres more (BM3D's Kaiser window).
    taper = torch.kaiser_window(size, periodic=False, beta=options.window_beta, dtype=noisy.dtype, device=noisy.device)
    window = rearrange(torch.outer(taper, taper), "p q -> (p q) 1")
    numerator = torch.zeros_like(noisy)
    denominator = torch.zeros_like(noisy)
    chunk = max(1, 2**22 // (group_size * size * size))
    for begin in range(0, ref_y.numel(), chunk):
        part = slice(begin, begin + chunk)
        # The reference itself is at distance 0 and comes first.
        nearest = distances[part].topk(group_size, dim=1, largest=False).indices
        gy, gx = ref_y[part, None] + off_y[nearest], ref_x[part, None] + off_x[nearest]
        noisy_spectrum, pilot_spectrum = (
            group_transform(rearrange(patches[:, gy, gx], "c n k p q -> c n (p q) k"), patch_basis, group_basis)
            for patches in (noisy_patches, pilot_patches)
        )  # (C, N, s^2, K)
        shrink = pilot_spectrum.square() / (pilot_spectrum.square() + noise)
        weight = 1.0 / (shrink.square() * noise).sum((2, 3)).clamp_min(1e-12)  # (C, N)
        estimate = patch_basis.T @ (shrink * noisy_spectrum) @ group_basis  # (C, N, s^2, K): the inverse
        # Add each patch back where it came from.
        pixel_y = gy[:, None, :] + rearrange(torch.arange(size, device=noisy.device).repeat_interleave(size), "f -> 1 f 1")
        pixel_x = gx[:, None, :] + rearrange(torch.arange(size, device=noisy.device).repeat(size), "f -> 1 f 1")
        index = (pixel_y * width + pixel_x).flatten()
        spread = (weight[..., None, None] * window).expand_as(estimate)
        numerator.view(channels, -1).index_add_(1, index, (estimate * spread).reshape(channels, -1))
        denominator.view(channels, -1).index_add_(1, index, spread.reshape(channels, -1))
    covered = denominator > 0
    return torch.where(covered, numerator / denominator.clamp_min(1e-30), pilot)


def patch_distances(
    luma: torch.Tensor, ref_y: torch.Tensor, ref_x: torch.Tensor, off_y: torch.Tensor, off_x: torch.Tensor, size: int
) -> torch.Tensor:
    """(N, O) squared distances between the ``size`` patches of (H, W) ``luma`` at the N references and
    at each of the O offsets from them; infinite where the offset patch leaves the image. One image-
    wide box sum per offset: cheaper than gathering N x O patches."""
    height, width = luma.shape
    reach = int(max(off_y.abs().max(), off_x.abs().max()))
    padded = F.pad(luma[None, None], (reach,) * 4)
    distances = torch.empty(ref_y.numel(), off_y.numel(), dtype=luma.dtype, device=luma.device)
    for column, (dy, dx) in enumerate(zip(off_y.tolist(), off_x.tolist())):
        shifted = padded[..., reach + dy:reach + dy + height, reach + dx:reach + dx + width]
        box = window_sums((luma - shifted).square_()[0, 0], size)
        distances[:, column] = box[ref_y, ref_x]
    inside = ((ref_y[:, None] + off_y >= 0) & (ref_y[:, None] + off_y <= height - size)
              & (ref_x[:, None] + off_x >= 0) & (ref_x[:, None] + off_x <= width - size))
    return distances.masked_fill_(~inside, float("inf"))


def group_transform(groups: torch.Tensor, patch_basis: torch.Tensor, group_basis: torch.Tensor) -> torch.Tensor:
    """The 3-D DCT of (..., s^2, K) groups of flattened patches: 2-D DCT of each patch, then across the group."""
    return patch_basis @ groups @ group_basis.T


def grid(first: int, last: int, stride: int, device: torch.device) -> torch.Tensor:
    """Positions from ``first`` to ``last`` every ``stride``, with ``last`` always included."""
    positions = list(range(first, last + 1, stride))
    if positions and positions[-1] != last:
        positions.append(last)
    return torch.tensor(positions, dtype=torch.long, device=device)
