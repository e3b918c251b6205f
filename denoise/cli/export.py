"""Export: a checkpoint's network as one ONNX graph that runs without this project.

The graph takes a float32 (N, C, H, W) image in [0, 1] of any batch and size (both sides at least
``size_multiple + 1``) and returns the denoised image, the same shape. Inside it: the scaling to the
network's data range (``data_scale``), the reflect padding to a multiple of ``size_multiple``, the
network, the crop back and the scaling back, i.e. what ``model(x)`` computes.

Only single-pass (non-blind) models export: a distillation student (U-Net, HCANet, ...). A blind-spot
network's protocol (PD, then R3 with random masks) is several passes around it; exporting the bare
pass would ship a model that, run as one would expect, gives a worse image than its checkpoint.

The steps of the checkpoint's inference that stay outside the graph (chroma smoothing, detail
restoration, the non-local means blend, tiling, self-ensemble, clamping, reading the file) are
listed in the log line and in ``<output>.json``, next to the model, with how to run them.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from denoise.errors import ConfigError
from denoise.lit import BlindSpotModule, DenoisingModule, DistillationModule, load_model
from denoise.nets.base import Network
from denoise.ops import InferenceSettings
from denoise.ops.settings import FINISHING_OFF

log = logging.getLogger(__name__)

FORMATS = ("onnx",)
EXPORTER_PACKAGES = ("onnx", "onnxscript")  # torch.onnx.export(dynamo=True) needs both
# The ONNX packages log every optimisation pass at INFO, and torch's registry warns that the
# optional torchvision operators are missing: noise in an entry point's output.
EXPORTER_LOG_LEVELS = {"onnx_ir": logging.WARNING, "onnxscript": logging.WARNING,
                       "torch.onnx._internal.exporter._registration": logging.ERROR}
INPUT_NAME, OUTPUT_NAME = "noisy", "denoised"
# Single-pass modules: their whole protocol is the network on the image (denoise.ops.single_pass_denoise).
SINGLE_PASS_MODULES = (DistillationModule,)


class ImageGraph(torch.nn.Module):
    """``module(x)`` on a [0, 1] image, written so that its padding survives dynamic shapes.

    ``Network.forward`` skips the padding when the sides are multiples already and falls back to
    zeros when they are too small to reflect: both are branches on the size, which a graph for
    every size cannot hold. Here the padding is always applied (zero rows when none are needed),
    and the padded size is ``ceil(h / m) * m``, a form the exporter can prove to be a multiple of
    ``m`` (it cannot for ``h + (-h) % m``). For sides of at least ``m + 1`` both give the same image.
    """

    def __init__(self, net: Network, data_scale: float):
        super().__init__()
        self.net, self.data_scale = net, float(data_scale)

    def forward(self, noisy: torch.Tensor) -> torch.Tensor:
        height, width = noisy.shape[-2:]
        multiple = self.net.size_multiple
        pad_h = (height + multiple - 1) // multiple * multiple - height
        pad_w = (width + multiple - 1) // multiple * multiple - width
        padded = F.pad(noisy * self.data_scale, (0, pad_w, 0, pad_h), mode=self.net.padding_mode)
        return self.net.forward_padded(padded)[..., :height, :width] / self.data_scale


def export(cfg: DictConfig) -> dict:
    """Write ``cfg.output`` (the graph) and its sidecar; returns what was written and measured."""
    check_format(cfg.get("format"))
    if not cfg.get("ckpt_path"):
        raise ConfigError("ckpt_path is not set: pass ckpt_path=<a distillation student's checkpoint>, "
                          "e.g. logs/photos/runs/<run>/student/checkpoints/last.ckpt")
    target = output_file(cfg.get("output"))
    model = load_model(cfg.get("ckpt_path"), "cpu")
    check_exportable(model, cfg.ckpt_path)
    graph = ImageGraph(model.net, model.data_scale).eval()

    started = time.perf_counter()
    with quiet_exporter_logs():
        opset = write_onnx(graph, target, cfg.get("opset"), cfg.ckpt_path)
    seconds = time.perf_counter() - started
    check = verify(model, target, float(cfg.get("tolerance", 1e-4)), cfg.ckpt_path) if cfg.get("verify") else None

    outside = outside_graph(model.inference)
    sidecar = target.with_suffix(".json")
    summary = describe(model, cfg.ckpt_path, target, opset, seconds, outside, check)
    sidecar.write_text(json.dumps(summary, indent=2) + "\n")
    log.info(
        f"Exported {cfg.ckpt_path} ({type(model.net).__name__}) to {target} "
        f"({target.stat().st_size / 1e6:.1f} MB, {seconds:.1f} s): float32 (N, {model.in_channels}, H, W) "
        f"in [0, 1], H, W >= {min_side(model.net)}; outside the graph (see {sidecar.name}): "
        + ", ".join(step["step"] for step in outside)
        + (f"; onnxruntime matches PyTorch to {check['max_relative_difference']:.1e}" if check else "")
    )
    return {"output": str(target), "sidecar": str(sidecar), "seconds": seconds, "bytes": target.stat().st_size,
            "outside_graph": [step["step"] for step in outside], "check": check}


# --- the checks before the (slow) export --------------------------------------------------------
def check_format(value: str | None) -> None:
    if value not in FORMATS:
        raise ConfigError(f"format={value}: expected one of {', '.join(FORMATS)}")
    missing = [name for name in EXPORTER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"format={value} needs the package(s) {', '.join(missing)}: pip install -e '.[export]'")


def output_file(output: str | None) -> Path:
    """The model's path, its folder created and known to be writable."""
    if not output:
        raise ConfigError("output is not set: pass output=<a file>.onnx")
    path = Path(str(output)).expanduser()
    if path.suffix != ".onnx":
        raise ConfigError(f"output={output}: expected a file name ending in .onnx")
    if path.is_dir():
        raise ConfigError(f"output={output} is a folder; expected a file name ending in .onnx")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as error:
        raise ConfigError(f"output={output}: cannot write into {path.parent} ({error.strerror})") from error
    return path


def check_exportable(model: DenoisingModule, ckpt_path: str) -> None:
    name = type(model.net).__name__
    # ``blindness``: what a network declares it may not read (None: an ordinary network).
    if isinstance(model, BlindSpotModule) or (isinstance(model.net, Network) and model.net.blindness is not None):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: {name} is a blind-spot network whose protocol (PD + R3) runs outside "
            f"a single graph; export its distilled student (python train.py experiment=photos_distill ...)"
        )
    if not isinstance(model, SINGLE_PASS_MODULES) or not isinstance(model.net, Network):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: a {type(model).__name__} with a {name} is not a single-pass denoiser; "
            f"expected a distillation student's checkpoint"
        )


# --- the export ---------------------------------------------------------------------------------
def min_side(net: Network) -> int:
    """The smallest height / width the graph takes: one more than the size multiple keeps the
    reflection shorter than the side and every level of the network at least 2 pixels (the
    exporter specialises sizes 0 and 1)."""
    return net.size_multiple + 1


def example_side(net: Network) -> int:
    return max(64, 2 * net.size_multiple)


def exported_program(graph: ImageGraph, ckpt_path: str) -> torch.export.ExportedProgram:
    """The graph with batch, height and width dynamic.

    ``torch.export`` is called here rather than by ``torch.onnx.export``: on a failure the latter
    falls back to other capture strategies that may quietly fix a size. Shape facts the exporter
    cannot prove but that hold for every allowed size (``pad < h``) become run-time checks
    (``prefer_deferred_runtime_asserts_over_guards``) instead of errors. The example batch is 2:
    an example size of 1 would be specialised.
    """
    net = graph.net
    side, low = example_side(net), min_side(net)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height", min=low),
            3: torch.export.Dim("width", min=low)}
    example = torch.rand(2, net.in_channels, side, side)
    try:
        return torch.export.export(graph, (example,), dynamic_shapes={"noisy": dims},
                                   prefer_deferred_runtime_asserts_over_guards=True)
    except Exception as error:  # torch.export raises many types; the first line says which
        raise ConfigError(
            f"ckpt_path={ckpt_path}: its network {type(net).__name__} cannot be exported with dynamic image "
            f"sizes ({first_line(error)})"
        ) from error


def write_onnx(graph: ImageGraph, target: Path, opset: int | None, ckpt_path: str) -> int:
    """Write the graph to ``target`` as one file (weights inside); returns the opset it uses."""
    program = exported_program(graph, ckpt_path)
    try:
        onnx_program = torch.onnx.export(program, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                         opset_version=opset, dynamo=True, verbose=False)
    except Exception as error:
        raise ConfigError(
            f"ckpt_path={ckpt_path}: its network {type(graph.net).__name__} cannot be translated to ONNX "
            f"({first_line(error)})"
        ) from error
    onnx_program.save(str(target), external_data=False)  # one file to ship (the limit is 2 GB)
    return next(op.version for op in onnx_program.model_proto.opset_import if op.domain in ("", "ai.onnx"))


@contextmanager
def quiet_exporter_logs():
    loggers = {logging.getLogger(name): level for name, level in EXPORTER_LOG_LEVELS.items()}
    before = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        with warnings.catch_warnings():
            # torch's own deprecation, raised inside its exporter (as in pyproject's filterwarnings).
            warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.*")
            yield
    finally:
        for logger, level in before.items():
            logger.setLevel(level)


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


# --- the check against PyTorch ------------------------------------------------------------------
def graph_settings(settings: InferenceSettings) -> InferenceSettings:
    """The checkpoint's protocol reduced to what the graph computes: one float32 pass, whole image."""
    return settings.overridden({"tile_size": 0, "ensemble": "none", "precision": "32", **FINISHING_OFF})


def check_shape(model: DenoisingModule) -> tuple[int, int, int, int]:
    """A batch of 2 at a size that is neither the export size nor a multiple of ``size_multiple``."""
    side, multiple = example_side(model.net), model.size_multiple
    return 2, model.in_channels, side + multiple // 2 + 1, side - 3


def verify(model: DenoisingModule, target: Path, tolerance: float, ckpt_path: str) -> dict | None:
    """Run the file with onnxruntime (when installed) against the PyTorch protocol it stands for."""
    if importlib.util.find_spec("onnxruntime") is None:
        log.warning("onnxruntime is not installed: the exported graph was not checked (pip install -e '.[export]')")
        return None
    import onnxruntime

    shape = check_shape(model)
    noisy = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    expected = model.denoise(noisy, graph_settings(model.inference))
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {INPUT_NAME: noisy.numpy()})[0])
    difference = relative_difference(got, expected)
    if not difference <= tolerance:
        target.unlink()
        raise ConfigError(
            f"ckpt_path={ckpt_path}: the exported graph differs from PyTorch by {difference:.1e} (relative, at "
            f"{'x'.join(map(str, shape))}), above tolerance={tolerance}; {target} was removed"
        )
    return {"onnxruntime": onnxruntime.__version__, "shape": list(shape), "max_relative_difference": difference}


def relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference over the largest magnitude of the expected image."""
    return float((got - expected).abs().max() / expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny))


# --- what the sidecar says ----------------------------------------------------------------------
def outside_graph(settings: InferenceSettings) -> list[dict[str, str]]:
    """The steps of the checkpoint's inference (predict.py) that the graph leaves to its caller."""
    steps = [{"step": "reading the image",
              "how": "decode the file to float32 (N, C, H, W) in [0, 1]; an alpha channel is not denoised"}]
    if settings.smooth_chroma:
        steps.append({
            "step": "chroma smoothing",
            "how": "denoise.ops.chroma.smooth_chroma(denoised): the chroma fitted locally to the luma "
                   "(a guided filter), before detail restoration",
        })
    if settings.restore_detail:
        steps.append({
            "step": "detail restoration",
            "how": "denoise.ops.detail.restore_detail(noisy, denoised): it measures the noise over the whole "
                   "image (quantiles, data-dependent masks), which one graph for every size cannot hold",
        })
    if settings.nonlocal_blend:
        steps.append({
            "step": "non-local means blend",
            "how": f"denoise.ops.nonlocal_means.blend_nonlocal(noisy, denoised, {settings.nonlocal_blend}): a "
                   "non-local means estimate of the noisy image, its noise level read from noisy - denoised (a "
                   "median), averaged in with that weight, after detail restoration",
        })
    if settings.edge_wiener_passes:
        steps.append({
            "step": "collaborative Wiener on edges",
            "how": f"denoise.ops.collaborative_wiener.sharpen_edges(noisy, denoised), {settings.edge_wiener_passes} "
                   "times, last: patches grouped by similarity and Wiener-filtered with the denoised photo as the "
                   "pilot, on the strongest edges only; data-dependent groups no graph holds",
        })
    if settings.ensemble != "none":
        steps.append({"step": "x8 self-ensemble",
                      "how": "average the graph's outputs over the 8 flips / rotations of the input"})
    if settings.tile_size:
        steps.append({
            "step": "tiling",
            "how": f"predict.py runs the network in tiles of {settings.tile_size} px overlapping by "
                   f"{settings.tile_overlap} to bound memory; the graph takes the whole image at once",
        })
    if settings.precision == "bf16":
        steps.append({"step": "bfloat16", "how": "the checkpoint runs in bfloat16 autocast; the graph is float32"})
    steps.append({"step": "clamping", "how": "clip the output to [0, 1] before writing it"})
    return steps


def describe(
    model: DenoisingModule, ckpt_path: str, target: Path, opset: int, seconds: float, outside: list[dict],
    check: dict | None,
) -> dict:
    net, channels = model.net, model.in_channels
    shape = ["batch", channels, "height", "width"]
    return {
        "format": "onnx",
        "file": target.name,
        "checkpoint": str(Path(str(ckpt_path)).expanduser().resolve()),
        "module": f"{type(model).__module__}.{type(model).__qualname__}",
        "network": model.network_config(),
        "parameters": sum(p.numel() for p in net.parameters()),
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": shape, "range": [0.0, 1.0],
                  "min_side": min_side(net)},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": shape, "clamped": False},
        "graph": [
            f"multiply by data_scale={model.data_scale:g}",
            f"reflect-pad bottom and right to a multiple of {net.size_multiple}",
            f"the network ({type(net).__name__})",
            "crop back to height x width",
            f"divide by data_scale={model.data_scale:g}",
        ],
        "outside_graph": outside,
        "opset": opset,
        "torch": torch.__version__,
        "export_seconds": round(seconds, 2),
        "check": check,
    }
