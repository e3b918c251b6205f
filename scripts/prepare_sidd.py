"""Cut SIDD Medium sRGB into overlapping patches (AP-BSN: 512 x 512, overlap 128) for faster training.

    python scripts/prepare_sidd.py --root /datasets/SIDD
    python scripts/prepare_sidd.py --root /datasets/SIDD --size 768 --overlap 128 --out /scratch/sidd_768

Interrupted runs resume where they stopped (each finished image leaves a marker). The SIDD
datamodule (``data=sidd``) finds caches in the default place (``SIDD_Medium_Srgb/Patches_<size>_o<overlap>``)
by itself and uses the smallest complete one whose patches are at least ``data.crop_size``; for a
cache elsewhere pass ``data.patch_dir``. The TBSN recipe crops 640 x 640, so it needs ``--size 640`` or
more (or it reads the full images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from denoise.data.datamodules.sidd import find_data_dir, medium_images
from denoise.data.datasets.sidd_patches import cut_patches, default_patch_dir
from denoise.errors import UserInputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="SIDD root (holding SIDD_Medium_Srgb/), SIDD_Medium_Srgb or Data")
    parser.add_argument("--out", default=None, help="cache folder (default: SIDD_Medium_Srgb/Patches_<size>_o<overlap>)")
    parser.add_argument("--size", type=int, default=512, help="patch side in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=128, help="overlap of neighbouring patches (default 128)")
    parser.add_argument("--with-gt", action="store_true", help="also cut the ground-truth images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        data_dir = find_data_dir(args.root)
        pairs = medium_images(data_dir)
        sources = [noisy for noisy, _ in pairs]
        if args.with_gt:
            sources += [gt for _, gt in pairs if gt is not None]
        out = args.out or default_patch_dir(data_dir, args.size, args.overlap)
        manifest = cut_patches(sources, out, args.size, args.overlap, not args.no_progress, data_dir)
    except UserInputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{manifest['count']} patches of {args.size}px from {manifest['images']} images in {out}")
    if args.out and Path(args.out).resolve().parent != data_dir.parent.resolve():
        print(f"train with data.patch_dir={out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
