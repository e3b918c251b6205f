"""Evaluate a checkpoint: `python eval.py ckpt_path=<ckpt> [data=sidd_val data.root=...] [key=value ...]`
(see configs/eval.yaml)."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import task_wrapper
from denoise.cli.eval import evaluate


@hydra.main(version_base="1.3", config_path="configs", config_name="eval")
@task_wrapper
def main(cfg: DictConfig) -> dict | None:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
