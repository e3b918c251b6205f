"""Inference on an image of any size: what every denoising module's ``denoise`` runs.

The settings are :class:`~denoise.ops.settings.InferenceSettings`; every network call goes
through a :class:`~denoise.ops.network_pass.NetworkPass` and reports to the progress counters of
:mod:`denoise.ops.progress`.

``blind_spot_denoise(net, noisy, settings)``, the protocol of a blind-spot network::

    noisy -> pad to a multiple of the PD factor (phase-safe) -> PD down (f) -> network pass
          -> PD up -> crop -> [R3: T network passes at full resolution on partly re-noised copies]

and ``single_pass_denoise(net, noisy, settings)``, the protocol of a non-blind network, is one
network pass on the whole image. A network pass is precision, tiling and (``ensemble: pass``)
the x8 self-ensemble around the network (:mod:`denoise.ops.network_pass`).

``smooth_chroma: true``, ``restore_detail: true``, ``nonlocal_blend: w`` and ``edge_wiener_passes: n``
run :func:`denoise.ops.chroma.smooth_chroma`, :func:`denoise.ops.detail.restore_detail`,
:func:`denoise.ops.nonlocal_means.blend_nonlocal` and then ``n`` times
:func:`denoise.ops.collaborative_wiener.sharpen_edges` on the protocol's result (after any
ensemble): steps of the photos recipe, not of the papers' protocols (:func:`finish`).

``ensemble: protocol`` instead wraps the whole protocol (PD + R3) in the x8 self-ensemble, as
the official TBSN benchmark code does: transform i of the image runs the protocol with R3 seed
``r3_seed + i``, so each transform draws fresh masks and the result is still reproducible.

Why tile the network passes and not the whole protocol: PD and R3 are cheap whole-image tensor
operations (a reshape, a random mask, an average) whose cost is a few image-sized buffers; the
network is what needs memory. Running PD and R3 on the whole image and tiling only the network
keeps the R3 masks exactly those of the untiled run (drawn for the whole image from the seed),
so the tiled protocol equals the untiled one wherever the tiled network equals the network
(``tests/test_inference.py``). Every network call holds about ``tile_size**2`` pixels: the PD pass
runs its f*f sub-images one call each when they are that large (tiled when larger), several per
call when smaller, so memory is the same in every pass.

Padding: the networks pad to their own size multiple inside (parity-preserving reflection). For
PD the protocol pads to a multiple of f itself (:func:`~denoise.ops.pd.pad_for_pd`) with copies
that land in a *different* sub-image than their source, so no sub-image holds a pixel twice and
the border pixels stay blind to their own noise.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from denoise.ops.chroma import smooth_chroma
from denoise.ops.collaborative_wiener import sharpen_edges
from denoise.ops.detail import restore_detail
from denoise.ops.ensemble import TRANSFORMS, protocol_self_ensemble
from denoise.ops.network_pass import NetworkFunction, NetworkPass, network_alignment
from denoise.ops.nonlocal_means import blend_nonlocal
from denoise.ops.pd import pad_for_pd, pd_down, pd_up
from denoise.ops.progress import CallCounter, EnsembleProgress, Progress
from denoise.ops.protocols import finishing_steps
from denoise.ops.r3 import r3_refine
from denoise.ops.settings import FINISHING_OFF, InferenceSettings

# The protocols, and the names earlier code imports from this module (their homes are above).
__all__ = [
    "InferenceSettings", "NetworkPass", "Progress", "blind_spot_denoise", "network_alignment", "pad_for_pd",
    "single_pass_denoise",
]


def blind_spot_denoise(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None = None
) -> torch.Tensor:
    """Denoise (B, C, H, W) ``noisy`` with a blind-spot network, any size (see the module docstring).

    ``progress(done, total)`` is called after every network call (tile), if given.
    """
    if finishes(settings):
        return finish(noisy, blind_spot_denoise(net, noisy, without_finishing(settings), progress), settings)
    if settings.ensemble == "protocol":
        return _whole_protocol_ensemble(net, noisy, settings, progress)
    height, width = noisy.shape[-2:]
    factor, align = settings.pd_factor, network_alignment(net)
    counter = CallCounter(progress)
    padded = pad_for_pd(noisy, factor)
    subs = pd_down(padded, factor, settings.pd_layout, settings.pd_pad)
    network_pass = NetworkPass(net, settings, settings.tile_size or None, align, counter)
    pad, batch = settings.r3_pad, noisy.shape[0]
    counter.total = network_pass.calls(
        subs.shape[0], *subs.shape[-2:]
    ) + settings.r3_passes * network_pass.calls(batch, height + 2 * pad, width + 2 * pad)

    first_pass = pd_up(network_pass(subs), factor, padded.shape[-2:], settings.pd_layout, settings.pd_pad)
    first_pass = first_pass[..., :height, :width]
    if settings.r3_passes == 0:
        return first_pass
    return r3_refine(
        network_pass, noisy, first_pass, settings.r3_passes, settings.r3_p, settings.r3_seed, pad
    )


def single_pass_denoise(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None = None
) -> torch.Tensor:
    """Denoise (B, C, H, W) ``noisy`` with one pass of a non-blind network (no PD, no R3), any size.

    The whole protocol is that one pass, so ``ensemble: protocol`` is the ensemble of the pass.
    ``progress(done, total)`` is called after every network call (tile), if given.
    """
    if finishes(settings):
        return finish(noisy, single_pass_denoise(net, noisy, without_finishing(settings), progress), settings)
    if settings.ensemble == "protocol":
        settings = replace(settings, ensemble="pass")
    counter = CallCounter(progress)
    network_pass = NetworkPass(net, settings, settings.tile_size or None, network_alignment(net), counter)
    counter.total = network_pass.calls(noisy.shape[0], *noisy.shape[-2:])
    return network_pass(noisy)


def finish(noisy: torch.Tensor, denoised: torch.Tensor, settings: InferenceSettings) -> torch.Tensor:
    """The steps after the protocol that ``settings`` asks for: chroma smoothing, then detail
    restoration (which compares the smoothed colour with the noisy photo's), then the non-local
    means blend (which reads the noise level from what the steps before took out), then the passes of
    collaborative Wiener filtering on the edges (guided by all that came before)."""
    if settings.smooth_chroma:
        denoised = smooth_chroma(denoised)
    if settings.restore_detail:
        denoised = restore_detail(noisy, denoised)
    if settings.nonlocal_blend:
        denoised = blend_nonlocal(noisy, denoised, settings.nonlocal_blend)
    for _ in range(settings.edge_wiener_passes):
        denoised = sharpen_edges(noisy, denoised)
    return denoised


def finishes(settings: InferenceSettings) -> bool:
    """Whether ``settings`` ask for any step after the protocol."""
    return bool(finishing_steps(settings))


def without_finishing(settings: InferenceSettings) -> InferenceSettings:
    return replace(settings, **FINISHING_OFF)


def _whole_protocol_ensemble(
    net: NetworkFunction, noisy: torch.Tensor, settings: InferenceSettings, progress: Progress | None
) -> torch.Tensor:
    """x8 self-ensemble of the whole protocol; transform i draws its R3 masks from ``r3_seed + i``."""
    once = replace(settings, ensemble="none")
    runs = EnsembleProgress(progress, TRANSFORMS)

    def protocol(x: torch.Tensor, index: int) -> torch.Tensor:
        seeded = replace(once, r3_seed=settings.r3_seed + index)
        return blind_spot_denoise(net, x, seeded, runs.of_transform(index))

    return protocol_self_ensemble(protocol, noisy)
