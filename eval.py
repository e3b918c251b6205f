"""Evaluate a checkpoint: `python eval.py ckpt_path=<ckpt> [data=sidd_val data.root=...] [key=value ...]`
(see configs/eval.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import find_user_error, report_user_error
from denoise.cli.eval import evaluate


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
def main(cfg: DictConfig) -> dict | None:
    try:
        return evaluate(cfg)
    except Exception as error:
        user_error = find_user_error(error)
        if user_error is None:
            raise
        report_user_error(user_error)
        return None


if __name__ == "__main__":
    main()
