"""Export a checkpoint's network as one ONNX graph: `python export.py ckpt_path=<ckpt> output=model.onnx`
(see configs/export.yaml). Writes the model and, next to it, a JSON sidecar of what runs outside it."""

from omegaconf import DictConfig

from denoise.cli.export import export
from denoise.cli.launch import entry_point


@entry_point("export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
