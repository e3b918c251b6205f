"""Torch datasets: random training crops, whole images for evaluation, and the SIDD patch cache."""
