"""What a photographer sees that PSNR averages away: soft edges and blotches in flat areas.

Two denoisers at the same PSNR can look different: one keeps edges crisp and leaves blotches of
colour in the sky, the other is clean but soft. These measures, computed against the clean
reference on (H, W, 3) arrays in [0, 1], put numbers on the two:

- ``edge_contrast``: how much of the clean photo's edge contrast the output keeps. On the
  ``EDGE_FRACTION`` of pixels with the strongest clean luma gradient, the least-squares slope of
  the output's gradient vectors on the clean's, ``sum(g_out . g_clean) / sum(|g_clean|^2)`` (Sobel,
  on luma). 1 is as sharp as the clean photo, below 1 softer, above 1 over-sharpened. Noise left
  in the output is uncorrelated with the clean gradient, so it does not raise the slope (the plain
  ratio of gradient magnitudes would count noise as sharpness).
- ``blotch_luma`` / ``blotch_chroma``: how blotchy flat areas are. The error ``output - clean`` is
  low-passed (Gaussian, ``BLOTCH_SIGMA`` pixels: the scale of mottling, not of single-pixel noise)
  and looked at on the ``FLAT_FRACTION`` of pixels where the clean photo is flattest (luma
  variance in a ``FLAT_WINDOW`` window). Its mean over those pixels, a cast over the whole photo,
  is removed; what is left is split into luma and chroma (each channel minus the luma), and each
  is reported as an RMS in 8-bit levels (1 = one level of 255).

Luma is Rec. 601 (0.299 R + 0.587 G + 0.114 B). Single-channel images are their own luma and
have no chroma (``blotch_chroma`` 0).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EDGE_FRACTION = 0.1
EDGE_PRESMOOTH = 0.7   # pixels: the Gaussian that picks the edges on the clean photo
FLAT_FRACTION = 0.3
FLAT_WINDOW = 9
BLOTCH_SIGMA = 3.0
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])


def appearance_metrics(output: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """``edge_contrast``, ``blotch_luma`` and ``blotch_chroma`` of ``output`` against ``clean``
    (both (H, W, C) in [0, 1], C 1 or 3)."""
    if output.shape != clean.shape or output.ndim != 3 or output.shape[-1] not in (1, 3):
        raise ValueError(f"appearance_metrics: output {output.shape} and clean {clean.shape} must be the same "
                         "(H, W, 1 or 3) shape")
    output, clean = output.astype(np.float64), clean.astype(np.float64)
    return {"edge_contrast": edge_contrast(output, clean), **flat_blotches(output, clean)}


def luma(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else image @ LUMA_WEIGHTS


def sobel_gradients(plane: np.ndarray) -> np.ndarray:
    """(H, W, 2) vertical and horizontal Sobel derivatives."""
    return np.stack([ndimage.sobel(plane, 0), ndimage.sobel(plane, 1)], -1)


def edge_contrast(output: np.ndarray, clean: np.ndarray) -> float:
    clean_luma = luma(clean)
    strength = np.linalg.norm(sobel_gradients(ndimage.gaussian_filter(clean_luma, EDGE_PRESMOOTH)), axis=-1)
    edges = strength >= np.quantile(strength, 1 - EDGE_FRACTION)
    reference, found = sobel_gradients(clean_luma)[edges], sobel_gradients(luma(output))[edges]
    energy = float((reference * reference).sum())
    return float((reference * found).sum() / energy) if energy > 0 else 1.0


def flat_blotches(output: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    clean_luma = luma(clean)
    mean = ndimage.uniform_filter(clean_luma, FLAT_WINDOW)
    # Clamped: rounding makes the variance of a perfectly flat window a tiny number of either sign.
    variance = np.maximum(ndimage.uniform_filter(clean_luma**2, FLAT_WINDOW) - mean**2, 0)
    flat = variance <= np.quantile(variance, FLAT_FRACTION)
    error = output - clean
    low = np.stack([ndimage.gaussian_filter(error[..., c], BLOTCH_SIGMA) for c in range(error.shape[-1])], -1)[flat]
    low -= low.mean(0)  # a cast over the whole photo is not a blotch
    low_luma = luma(low[:, None, :])[:, 0]
    chroma = low - low_luma[:, None] if low.shape[-1] == 3 else np.zeros_like(low)
    return {"blotch_luma": 255 * float(np.sqrt(np.mean(low_luma**2))),
            "blotch_chroma": 255 * float(np.sqrt(np.mean(chroma**2)))}
