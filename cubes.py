"""Denoise your own hyperspectral cubes: `python cubes.py input=my_cubes/` trains a blind-spot network
on them and writes every cube denoised, as the same file (see configs/cubes.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.cubes import cubes
from denoise.cli.errors import task_wrapper


@hydra.main(version_base="1.3", config_path="configs", config_name="cubes")
@task_wrapper
def main(cfg: DictConfig) -> None:
    cubes(cfg)


if __name__ == "__main__":
    main()
