"""Whole networks assembled from blocks."""

from denoise.nets.blind_spot import BlindSpotBranch
from denoise.nets.dbsn import DBSN
from denoise.nets.hcanet import BlindSpotHCANet, HCANet
from denoise.nets.tbsn import TBSN

__all__ = ["DBSN", "TBSN", "BlindSpotBranch", "BlindSpotHCANet", "HCANet"]
