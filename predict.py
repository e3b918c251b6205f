"""Denoise files: `python predict.py ckpt_path=<ckpt> input=<file or folder> output=<folder>`
(see configs/predict.yaml). Exit status 1 if any file failed."""

from omegaconf import DictConfig

from denoise.cli.launch import entry_point
from denoise.cli.predict import predict


@entry_point("predict")
def main(cfg: DictConfig) -> None:
    if predict(cfg)["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
