"""Quality metrics, each with its protocol written down."""

from denoise.metrics.srgb import SRGB_PROTOCOL, gaussian_ssim, per_image_psnr, quantize_8bit

__all__ = ["SRGB_PROTOCOL", "gaussian_ssim", "per_image_psnr", "quantize_8bit"]
