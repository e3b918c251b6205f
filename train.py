"""Train a denoiser: `python train.py [experiment=...] [key=value ...]` (see configs/train.yaml)."""

from omegaconf import DictConfig

from denoise.cli.launch import entry_point
from denoise.cli.train import train


@entry_point("train")
def main(cfg: DictConfig) -> float | None:
    """Returns the optimized metric; None when a sweep job fails.

    The Optuna sweeper records a trial whose value is not a number as FAILED and goes on (a NaN
    would crash hydra-optuna-sweeper 1.2/1.3, which then passes the NaN again to a FAIL tell).
    """
    return train(cfg).get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    main()
