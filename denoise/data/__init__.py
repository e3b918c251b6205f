"""Data: files on disk, datasets over them, and one Lightning datamodule per source.

- ``formats/``: readers and writers of files (images, MATLAB, hyperspectral cubes).
- ``datasets/``: torch datasets (random training crops, whole images) and their crops.
- ``datamodules/``: one datamodule per ``configs/data/*.yaml`` over a shared base.
- ``noise``: synthetic noise models; ``checks``: data against the config; ``submission``:
  benchmark submission writers.
"""

from denoise.data.checks import check_channels

__all__ = ["check_channels"]
