"""Denoise files: `python predict.py ckpt_path=<ckpt> input=<file or folder> output=<folder>`
(see configs/predict.yaml). Exit status 1 if any file failed."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import find_user_error, report_user_error
from denoise.cli.predict import predict


@hydra.main(version_base="1.3", config_path="configs", config_name="predict")
def main(cfg: DictConfig) -> None:
    try:
        result = predict(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        report_user_error(user_error)
        return
    if result["failed"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
