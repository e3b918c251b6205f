"""A cache of SIDD Medium cut into overlapping patches (AP-BSN: 512 x 512, overlap 128).

Decoding a 12-16 megapixel PNG for every training crop is the slow part of SIDD training; small
patch files decode ~50x faster. :func:`cut_patches` (run by ``scripts/prepare_sidd.py``) writes
one PNG per patch, a marker per finished source image (so an interrupted run resumes where it
stopped) and finally ``manifest.json``; the SIDD datamodule uses the cache only when the
manifest says it is complete and its patches are at least ``data.crop_size``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from denoise.data.formats.image_files import read_raw
from denoise.errors import DataError

MANIFEST = "manifest.json"
DONE = ".done"


def default_patch_dir(data_dir: str | Path, size: int = 512, overlap: int = 128) -> Path:
    """``SIDD_Medium_Srgb/Patches_512_o128`` next to the ``Data`` folder."""
    return Path(data_dir).parent / f"Patches_{size}_o{overlap}"


def patch_starts(length: int, size: int, stride: int) -> list[int]:
    """Start offsets covering ``length`` with windows of ``size`` every ``stride`` (the last flush)."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return starts


def _write_atomic_png(path: Path, hwc: np.ndarray) -> None:
    temporary = path.with_name(path.name + ".part")
    Image.fromarray(hwc).save(temporary, format="PNG", compress_level=1)
    os.replace(temporary, path)


def _write_atomic_json(path: Path, content) -> None:
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(json.dumps(content, indent=1))
    os.replace(temporary, path)


def cut_image(source: Path, out_dir: Path, size: int, overlap: int) -> list[dict]:
    """Cut one image into patch files; returns their manifest entries."""
    array, info = read_raw(source)
    stride = size - overlap
    entries = []
    kind = "gt" if "_GT_" in source.name.upper() else "noisy"
    for top in patch_starts(info.height, size, stride):
        for left in patch_starts(info.width, size, stride):
            name = f"{source.stem}_r{top:04d}_c{left:04d}.png"
            patch = np.ascontiguousarray(array[:, top : top + size, left : left + size].transpose(1, 2, 0))
            _write_atomic_png(out_dir / name, patch)
            entries.append({"file": name, "kind": kind, "source": source.name, "height": size, "width": size})
    return entries


def cut_patches(
    sources: Sequence[Path],
    out_dir: str | Path,
    size: int = 512,
    overlap: int = 128,
    progress: bool = True,
    data_dir: str | Path | None = None,
) -> dict:
    """Cut every source image into ``size`` patches overlapping by ``overlap``; resumable.

    Returns the manifest written to ``out_dir/manifest.json``.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise DataError(f"patch size {size} and overlap {overlap}: expected size > 0 and 0 <= overlap < size")
    out_dir = Path(out_dir)
    (out_dir / DONE).mkdir(parents=True, exist_ok=True)
    existing = read_manifest(out_dir)
    if existing is not None and (existing["size"], existing["overlap"]) != (size, overlap):
        raise DataError(
            f"{out_dir}: holds {existing['size']}px patches with overlap {existing['overlap']}; "
            f"choose another output folder for {size}/{overlap}"
        )
    entries: list[dict] = []
    for source in _progress(list(sources), progress, f"cutting SIDD into {size}px patches"):
        marker = out_dir / DONE / f"{source.stem}.json"
        if marker.is_file():
            entries += json.loads(marker.read_text())
            continue
        done = cut_image(source, out_dir, size, overlap)
        _write_atomic_json(marker, done)
        entries += done
    manifest = {
        "version": 1, "size": size, "overlap": overlap, "complete": True, "source": str(data_dir or ""),
        "images": len(sources), "count": len(entries), "patches": entries,
    }
    _write_atomic_json(out_dir / MANIFEST, manifest)
    return manifest


def read_manifest(out_dir: str | Path) -> dict | None:
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        manifest["size"], manifest["overlap"], manifest["patches"]
    except (ValueError, KeyError) as error:
        raise DataError(f"{path}: unreadable patch manifest ({error}); delete it and rerun scripts/prepare_sidd.py")
    return manifest


def _progress(items: list, enabled: bool, description: str):
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=description)
