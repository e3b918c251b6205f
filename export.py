"""Export a checkpoint's network as one ONNX graph: `python export.py ckpt_path=<ckpt> output=model.onnx`
(see configs/export.yaml). Writes the model and, next to it, a JSON sidecar of what runs outside it."""

import hydra
from omegaconf import DictConfig

from denoise.cli.errors import task_wrapper
from denoise.cli.export import export


@hydra.main(version_base="1.3", config_path="configs", config_name="export")
@task_wrapper
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
