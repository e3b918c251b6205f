"""Checkpoints that survive being killed while they are written.

Lightning writes a local checkpoint through fsspec's transaction, which stages the bytes in a
temporary file under the system temp dir and then ``shutil.move``s it: when that dir is on
another file system (common: /tmp on tmpfs, runs on NFS / Lustre) the move is a copy and a kill
during it leaves a truncated ``last.ckpt``. Here the bytes go to a temporary file next to the
target and ``os.replace`` swaps it in: atomic on POSIX, so ``last.ckpt`` is always whole.

Where a run keeps them: ``<run dir>/checkpoints/``, the newest weights as ``last.ckpt`` there
(:func:`last_checkpoint_path`), the file ``ckpt_path=last`` resumes from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from fsspec.core import strip_protocol
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import get_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO

CHECKPOINT_DIR = "checkpoints"  # under a run directory (configs/callbacks: ${paths.output_dir}/checkpoints)
LAST_CHECKPOINT = "last.ckpt"


def last_checkpoint_in(checkpoint_dir: str | Path) -> Path:
    """The newest weights' file in a directory of checkpoints."""
    return Path(checkpoint_dir) / LAST_CHECKPOINT


def last_checkpoint_path(run_dir: str | Path) -> Path:
    """``<run_dir>/checkpoints/last.ckpt``: where a training run keeps its newest weights."""
    return last_checkpoint_in(Path(run_dir) / CHECKPOINT_DIR)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def local_file(path: str | Path) -> Path | None:
    """The local file ``path`` names (a plain path or a ``file://`` / ``local://`` URL), else None.

    Only the protocol is parsed, so a remote URL (``s3://``...) needs no fsspec back end installed here.
    """
    path = os.fspath(path)
    if get_protocol(path) not in LocalFileSystem.protocol:
        return None
    return Path(strip_protocol(path))  # a URL's scheme dropped: Path("file:///x") would be ./file:/x


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (temp file in the same dir + os.replace)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        local = local_file(path)
        if storage_options is not None or local is None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_torch_save(checkpoint, local)
