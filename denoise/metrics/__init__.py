"""Quality metrics, each with its protocol written down."""

from denoise.metrics.srgb import SRGB_PROTOCOL, quantize_8bit, srgb_metrics

__all__ = ["SRGB_PROTOCOL", "quantize_8bit", "srgb_metrics"]
