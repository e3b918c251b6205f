"""Whole networks assembled from blocks, each a :class:`~denoise.nets.base.Network`."""

from denoise.nets.base import Network
from denoise.nets.blind_spot import BlindSpotBranch
from denoise.nets.dbsn import DBSN
from denoise.nets.hcanet import BlindSpotHCANet, HCANet
from denoise.nets.spectral_bsn import SpectralBlindSpotNet
from denoise.nets.tbsn import TBSN
from denoise.nets.unet import UNet

__all__ = ["DBSN", "TBSN", "BlindSpotBranch", "BlindSpotHCANet", "HCANet", "Network", "SpectralBlindSpotNet", "UNet"]
