"""Denoise your own hyperspectral cubes: `python cubes.py input=my_cubes/` trains a blind-spot network
on them and writes every cube denoised, as the same file (see configs/cubes.yaml)."""

from omegaconf import DictConfig

from denoise.cli.cubes import cubes
from denoise.cli.launch import entry_point


@entry_point("cubes")
def main(cfg: DictConfig) -> None:
    cubes(cfg)


if __name__ == "__main__":
    main()
