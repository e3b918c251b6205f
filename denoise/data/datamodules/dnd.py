"""``data=dnd``: the Darmstadt Noise Dataset sRGB benchmark (no ground truth; results go to a submission).

Layout (https://noise.visinf.tu-darmstadt.de/)::

    <root>/info.mat                 MATLAB v7.3; info.boundingboxes: per image a (20, 4) array of
                                    1-based [row0, col0, row1, col1] (inclusive) 512 x 512 boxes
    <root>/images_srgb/0001.mat ... 0050.mat   MATLAB v7.3, key InoisySRGB, float H x W x 3 in [0, 1]

Each test item is one box: ``name`` ``%04d_%02d`` (image, box, 1-based, the submission's file
names) and ``index`` (image, box) 0-based. Only the box is read from the HDF5 file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from denoise.data.datamodules.base import EvaluationDataModule
from denoise.data.formats.matfile import mat_keys
from denoise.errors import ConfigError, DataError
from denoise.rules import checked, integer, optional

DND_URL = "https://noise.visinf.tu-darmstadt.de/"
LAYOUT = "<root>/info.mat and <root>/images_srgb/0001.mat ... (MATLAB v7.3, key InoisySRGB)"
IMAGE_KEY = "InoisySRGB"


def read_boxes(info_path: Path) -> list[np.ndarray]:
    """Per image, its (boxes, 4) int array of 0-based [row0, col0, row1, col1) boxes."""
    try:
        with h5py.File(info_path, "r") as f:
            if "info" not in f or "boundingboxes" not in f["info"]:
                raise DataError(f"{info_path}: no info.boundingboxes (it has {', '.join(mat_keys(info_path))})")
            cell = f["info"]["boundingboxes"]
            tables = [np.asarray(f[ref]).transpose() for ref in np.asarray(cell).ravel()]
    except DataError:
        raise
    except OSError as error:
        raise DataError(f"{info_path}: not a MATLAB v7.3 (HDF5) file ({error}); expected the DND info.mat") from error
    boxes = []
    for i, table in enumerate(tables):
        if table.ndim != 2 or table.shape[1] != 4:
            raise DataError(f"{info_path}: boxes of image {i + 1} have shape {table.shape}; expected (boxes, 4)")
        one_based = table.astype(np.int64)
        boxes.append(np.stack([one_based[:, 0] - 1, one_based[:, 1] - 1, one_based[:, 2], one_based[:, 3]], 1))
    return boxes


class DNDBoxes(Dataset):
    def __init__(self, images: list[Path], boxes: list[np.ndarray]):
        self.items = [(i, k) for i, table in enumerate(boxes) for k in range(len(table))]
        self.images, self.boxes = images, boxes

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        i, k = self.items[index]
        row0, col0, row1, col1 = (int(v) for v in self.boxes[i][k])
        path = self.images[i]
        try:
            with h5py.File(path, "r") as f:
                if IMAGE_KEY not in f:
                    raise DataError(f"{path}: no variable {IMAGE_KEY!r} (it has {', '.join(mat_keys(path))})")
                # h5py holds MATLAB's H x W x 3 as (3, W, H): slice columns then rows, then swap back.
                crop = np.asarray(f[IMAGE_KEY][:, col0:col1, row0:row1], dtype=np.float32).transpose(0, 2, 1)
        except DataError:
            raise
        except OSError as error:
            raise DataError(f"{path}: not a readable MATLAB v7.3 file ({error})") from error
        if crop.shape[1:] != (row1 - row0, col1 - col0):
            raise DataError(f"{path}: box {k + 1} [{row0}:{row1}, {col0}:{col1}] lies outside the image")
        return {"noisy": torch.from_numpy(np.ascontiguousarray(crop)), "name": f"{i + 1:04d}_{k + 1:02d}",
                "index": torch.tensor([i, k])}


class DNDDataModule(EvaluationDataModule):
    """DND sRGB boxes for evaluation / submission (``images``: only the first N images, null = all)."""

    @checked("data.")
    def __init__(
        self, root: str | None = None, images: Annotated[int | None, optional(integer(1))] = None, num_workers: int = 0,
        **training_keys,
    ):
        super().__init__(num_workers, **training_keys)
        if root is None:
            raise ConfigError(f"data.root is not set: pass data.root=/path/to/dnd_2017 with {LAYOUT}; DND: {DND_URL}")
        self.root, self.images = Path(root), images

    def setup(self, stage: str | None = None) -> None:
        if self.test_set is not None:
            return
        info = self.root / "info.mat"
        if not info.is_file():
            state = "does not exist" if not self.root.exists() else "has no info.mat"
            raise DataError(f"data.root={self.root} {state}; expected {LAYOUT}; DND is documented at {DND_URL}")
        boxes = read_boxes(info)
        if self.images is not None:
            boxes = boxes[: int(self.images)]
        images = [self.root / "images_srgb" / f"{i + 1:04d}.mat" for i in range(len(boxes))]
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise DataError(f"{missing[0]}: missing ({len(missing)} of {len(images)} images); expected {LAYOUT}")
        self.test_set = DNDBoxes(images, boxes)
        self.in_channels = 3
