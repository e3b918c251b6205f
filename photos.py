"""Denoise your own photos: `python photos.py data.noisy_dir=my_photos/` trains a blind-spot teacher
on them, distils it into a fast student and writes the denoised images (see configs/photos.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import find_user_error, report_user_error
from denoise.cli.photos import photos


@hydra.main(version_base="1.3", config_path="configs", config_name="photos")
def main(cfg: DictConfig) -> None:
    try:
        photos(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        report_user_error(user_error)


if __name__ == "__main__":
    main()
