"""One Lightning datamodule per data source (``configs/data/*.yaml``) over the shared ``base``.

``sidd.SIDDDataModule``, ``sidd_blocks.SIDDValidationDataModule`` / ``SIDDBenchmarkDataModule``,
``dnd.DNDDataModule``, ``folder.FolderDataModule``, ``hsi.HSIDataModule``, ``demo.DemoDataModule``.
"""
