"""Evaluate a checkpoint: `python eval.py ckpt_path=<ckpt> [data=sidd_val data.root=...] [key=value ...]`
(see configs/eval.yaml)."""

from omegaconf import DictConfig

from denoise.cli.eval import evaluate
from denoise.cli.launch import entry_point


@entry_point("eval")
def main(cfg: DictConfig) -> dict | None:
    return evaluate(cfg)


if __name__ == "__main__":
    main()
