"""Readers, datasets, Lightning datamodules and noise models."""
