"""Denoise your own photos: `python photos.py data.noisy_dir=my_photos/` trains a blind-spot teacher
on them, distils it into a fast student and writes the denoised images (see configs/photos.yaml)."""

from omegaconf import DictConfig

from denoise.cli.launch import entry_point
from denoise.cli.photos import photos


@entry_point("photos")
def main(cfg: DictConfig) -> None:
    photos(cfg)


if __name__ == "__main__":
    main()
