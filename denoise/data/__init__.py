"""Readers, datasets, Lightning datamodules and noise models.

Datamodules (one per ``configs/data/*.yaml``): ``sidd.SIDDDataModule``,
``sidd_blocks.SIDDValidationDataModule`` / ``SIDDBenchmarkDataModule``, ``dnd.DNDDataModule``,
``folder.FolderDataModule``, ``hsi.HSIDataModule``, ``demo.DemoDataModule``. Image files are
read and written by ``io`` (``read_image``, ``write_image``), MATLAB files by ``matfile``.
"""

from denoise.data.checks import check_channels

__all__ = ["check_channels"]
