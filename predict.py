"""Denoise files: `python predict.py ckpt_path=<ckpt> input=<file or folder> output=<folder>`
(see configs/predict.yaml). Exit status 1 if any file failed."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import task_wrapper
from denoise.cli.predict import predict


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
@task_wrapper
def main(cfg: DictConfig) -> None:
    if predict(cfg)["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
