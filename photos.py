"""Denoise your own photos: `python photos.py data.noisy_dir=my_photos/` trains a blind-spot teacher
on them, distils it into a fast student and writes the denoised images (see configs/photos.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import task_wrapper
from denoise.cli.photos import photos


@hydra.main(version_base="1.3", config_path="configs", config_name="photos")
@task_wrapper
def main(cfg: DictConfig) -> None:
    photos(cfg)


if __name__ == "__main__":
    main()
