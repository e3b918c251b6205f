"""Train a denoiser: `python train.py [experiment=...] [key=value ...]` (see configs/train.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import find_user_error, report_user_error
from denoise.cli.train import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = train(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        report_user_error(user_error)
        return None
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    main()
