"""export.py: a student checkpoint as one ONNX graph of any size that onnxruntime runs as PyTorch does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from denoise.cli.export import export, graph_settings, relative_difference
from denoise.errors import ConfigError
from denoise.lit import BlindSpotModule, DistillationModule
from denoise.lit.importing import write_checkpoint
from denoise.nets.base import Network
from tests.conftest import compose_entry, compose_train, run_entry

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-4


def model_settings(overrides: list[str], tmp_path: Path) -> dict:
    settings = OmegaConf.to_container(compose_train(overrides, tmp_path).model, resolve=True)
    settings.pop("_target_"), settings.pop("_recursive_")
    return settings


@pytest.fixture(scope="module")
def photos_student(tmp_path_factory) -> tuple[Path, DistillationModule]:
    """The photos recipe's student (configs/experiment/photos_distill.yaml), untrained, as a checkpoint."""
    folder = tmp_path_factory.mktemp("photos_student")
    torch.manual_seed(0)
    module = DistillationModule(**model_settings(["experiment=photos_distill", "data.noisy_dir=x"], folder)).eval()
    return write_checkpoint(module, folder / "student.ckpt", imported_from={}), module


def compose_export(overrides: list[str], run_dir: Path):
    return compose_entry("export", overrides, run_dir)


def onnx_output(path: Path, noisy: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"noisy": noisy.numpy()})[0])


@pytest.fixture(scope="module")
def exported(photos_student, tmp_path_factory) -> Path:
    """``python export.py`` on the photos student, once for the tests of its outputs."""
    checkpoint, _ = photos_student
    folder = tmp_path_factory.mktemp("exported")
    target = folder / "deep" / "folder" / "student.onnx"  # a folder that does not exist yet
    result = run_entry("export.py", [f"ckpt_path={checkpoint}", f"output={target}"], folder / "run")
    assert result.returncode == 0, result.stderr[-3000:]
    return target


def test_the_photos_student_runs_in_onnxruntime_at_any_size_as_in_pytorch(photos_student, exported):
    _, module = photos_student
    target = exported
    multiple = module.size_multiple
    # Exported at 64x64: sides that need padding, multiples of another size, the smallest side.
    for shape in [(1, 3, 37, 53), (2, 3, 96, 80), (1, 3, multiple + 1, 3 * multiple - 1)]:
        noisy = torch.rand(shape, generator=torch.Generator().manual_seed(1))
        expected = module.denoise(noisy, graph_settings(module.inference))
        got = onnx_output(target, noisy)
        assert got.shape == noisy.shape
        assert relative_difference(got, expected) < TOLERANCE, shape


def test_the_sidecar_and_the_log_name_what_runs_outside_the_graph(photos_student, exported):
    _, module = photos_student
    target = exported
    sidecar = json.loads(target.with_suffix(".json").read_text())
    assert sidecar["check"]["max_relative_difference"] < TOLERANCE  # the export's own check
    assert sidecar["input"]["shape"] == ["batch", 3, "height", "width"]
    assert sidecar["input"]["min_side"] == module.size_multiple + 1
    assert sidecar["network"]["_target_"].endswith("UNet") and sidecar["parameters"] == 381_347
    # The photos student smooths chroma, restores detail, blends in non-local means and sharpens its
    # edges after its pass: outside the graph.
    outside = [step["step"] for step in sidecar["outside_graph"]]
    assert {"chroma smoothing", "detail restoration", "non-local means blend", "collaborative Wiener on edges",
            "clamping", "tiling"} <= set(outside)
    log = (target.parents[2] / "run" / "export.log").read_text()
    assert "outside the graph" in log and all(step in log for step in outside)


@pytest.mark.slow  # the exporter takes a minute over HCANet's attention blocks
def test_a_non_blind_hcanet_student_exports_too(tmp_path):
    student = {"_target_": "denoise.nets.HCANet", "in_channels": 4, "dim": 8, "num_blocks": [1, 1, 1],
               "num_refinement_blocks": 0, "heads": [1, 1, 2]}
    torch.manual_seed(0)
    module = DistillationModule(student=student, optimizer={"_target_": "torch.optim.AdamW"}).eval()
    checkpoint = write_checkpoint(module, tmp_path / "hcanet.ckpt", imported_from={})
    target = tmp_path / "hcanet.onnx"
    result = export(compose_export([f"ckpt_path={checkpoint}", f"output={target}"], tmp_path / "run"))
    assert result["check"]["max_relative_difference"] < TOLERANCE
    noisy = torch.rand(3, 4, 37, 53, generator=torch.Generator().manual_seed(2))
    assert relative_difference(onnx_output(target, noisy), module(noisy).detach()) < TOLERANCE
    assert "detail restoration" not in result["outside_graph"]
    assert "chroma smoothing" not in result["outside_graph"]
    assert "non-local means blend" not in result["outside_graph"]
    assert "collaborative Wiener on edges" not in result["outside_graph"]


def test_a_blind_spot_checkpoint_is_refused_in_one_line(tmp_path):
    module = BlindSpotModule(**model_settings(["debug=fast"], tmp_path))
    checkpoint = write_checkpoint(module, tmp_path / "bsn.ckpt", imported_from={})
    with pytest.raises(ConfigError, match=r"blind-spot network whose protocol \(PD \+ R3\) runs outside"):
        export(compose_export([f"ckpt_path={checkpoint}", f"output={tmp_path / 'm.onnx'}"], tmp_path / "run"))
    assert not (tmp_path / "m.onnx").exists()


class BrightnessBranchNet(Network):
    """A network whose computation depends on its input's values: no graph captures that."""

    def __init__(self, in_channels: int = 3):
        super().__init__(in_channels, 4)
        self.conv = torch.nn.Conv2d(in_channels, in_channels, 3, padding=1)

    def forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) if float(x.mean()) > 0.5 else x


def test_a_network_that_cannot_be_exported_is_one_line_naming_it(tmp_path):
    student = {"_target_": f"{__name__}.BrightnessBranchNet"}
    module = DistillationModule(student=student, optimizer={"_target_": "torch.optim.AdamW"})
    checkpoint = write_checkpoint(module, tmp_path / "branch.ckpt", imported_from={})
    cfg = compose_export([f"ckpt_path={checkpoint}", f"output={tmp_path / 'm.onnx'}"], tmp_path / "run")
    with pytest.raises(ConfigError, match=r"its network BrightnessBranchNet cannot be exported") as error:
        export(cfg)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ([], "ckpt_path is not set"),
        (["ckpt_path=missing.ckpt"], "ckpt_path=missing.ckpt does not exist"),
        (["format=tflite"], "format=tflite: expected one of onnx"),
        (["ckpt_path=any.ckpt", "output=null"], "output is not set"),
        (["ckpt_path=any.ckpt", "output=model.pt"], "output=model.pt: expected a file name ending in .onnx"),
    ],
)
def test_bad_settings_are_one_line_config_errors(overrides, message, tmp_path):
    defaults = {"output": f"output={tmp_path / 'm.onnx'}", "ckpt_path": "ckpt_path=null"}
    keys = {item.split("=")[0] for item in overrides}
    cfg = compose_export([*(v for k, v in defaults.items() if k not in keys), *overrides], tmp_path / "run")
    with pytest.raises(ConfigError, match=message):
        export(cfg)


def test_an_output_folder_that_cannot_be_written_is_named_before_the_checkpoint_is_read(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cfg = compose_export([f"output={blocker}/model.onnx", "ckpt_path=never_read.ckpt"], tmp_path / "run")
    with pytest.raises(ConfigError, match=f"output={blocker}/model.onnx: cannot write into {blocker}"):
        export(cfg)
