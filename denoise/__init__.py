"""Self-supervised image denoising with blind-spot networks."""
