"""What the code relies on from Lightning beyond its public API, pinned so that a Lightning
upgrade that changes it fails here, by name, instead of silently losing checkpoints or curves."""

from __future__ import annotations

import ast
import csv
import inspect
from pathlib import Path

import fsspec
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from denoise.lit.checkpointing import AtomicCheckpointIO, local_file
from denoise.lit.loggers import ResumableCSVLogger, _AppendingWriter

ROOT = Path(__file__).resolve().parents[1]
LIGHTNING = {"lightning", "pytorch_lightning", "lightning_fabric"}


def private_lightning_imports(source: str) -> list[str]:
    """The Lightning names ``source`` imports that Lightning marks private (a leading underscore)."""
    def private(dotted: str) -> bool:
        return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIGHTNING:
            found += [f"{node.module}.{a.name}" for a in node.names if private(f"{node.module}.{a.name}")]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in LIGHTNING and private(a.name)]
    return found


def test_private_lightning_names_are_imported_nowhere():
    assert private_lightning_imports("from lightning.fabric.utilities.cloud_io import _is_dir, get_filesystem")
    sources = [*(ROOT / "denoise").rglob("*.py"), *ROOT.glob("*.py"), *(ROOT / "scripts").glob("*.py")]
    found = {str(p.relative_to(ROOT)): private_lightning_imports(p.read_text()) for p in sources}
    assert {path: names for path, names in found.items() if names} == {}


@pytest.mark.parametrize("path, local", [
    ("/runs/a/last.ckpt", "/runs/a/last.ckpt"),
    ("file:///runs/a/last.ckpt", "/runs/a/last.ckpt"),
    ("local:///runs/a/last.ckpt", "/runs/a/last.ckpt"),
    (Path("/runs/a/last.ckpt"), "/runs/a/last.ckpt"),
    ("s3://bucket/last.ckpt", None),  # no s3fs needed to tell
    ("gs://bucket/last.ckpt", None),
    ("memory://runs/last.ckpt", None),
    ("simplecache::file:///runs/a/last.ckpt", None),  # a chain: left to fsspec
])
def test_local_file_tells_local_paths_and_urls_from_remote_ones(path, local):
    assert local_file(path) == (None if local is None else Path(local))


def test_a_relative_path_is_local_and_stays_where_it_points(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_file("checkpoints/last.ckpt") == tmp_path / "checkpoints" / "last.ckpt"


def test_a_file_url_checkpoint_is_written_atomically_to_the_file_it_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "run" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 3}, f"file://{target}")
    assert torch.load(target, weights_only=False)["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # not ./file:/...
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]  # no temporary left


def test_a_remote_checkpoint_goes_through_lightnings_own_writer():
    io, url = AtomicCheckpointIO(), "memory://adapters/last.ckpt"
    try:
        io.save_checkpoint({"step": 5}, url)
        assert io.load_checkpoint(url)["step"] == 5
    finally:
        fsspec.filesystem("memory").rm("/adapters", recursive=True)


# --- ResumableCSVLogger: the override of a private hook of Lightning's CSV writer ---------------

def write_metrics(log_dir: Path, text: str) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "metrics.csv").write_text(text)
    return log_dir / "metrics.csv"


def test_lightnings_csv_writer_still_deletes_metrics_in_the_hook_the_adapter_overrides(tmp_path):
    hook = getattr(ExperimentWriter, "_check_log_dir_exists", None)
    assert callable(hook), "Lightning renamed ExperimentWriter._check_log_dir_exists: update denoise/lit/loggers.py"
    assert list(inspect.signature(hook).parameters) == ["self"]
    assert "_check_log_dir_exists" in _AppendingWriter.__dict__

    metrics = write_metrics(tmp_path / "plain", "epoch,step\n0,0\n")
    with pytest.warns(UserWarning, match="will be deleted"):
        ExperimentWriter(log_dir=str(metrics.parent))
    assert not metrics.exists(), "Lightning's CSV writer keeps metrics.csv now: the adapter may be dropped"

    calls = []

    class Spy(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            calls.append(list(self.metrics_keys))  # set before the hook runs, so the hook may fill it

    metrics = write_metrics(tmp_path / "spied", "epoch,step\n0,0\n")
    writer = Spy(log_dir=str(metrics.parent))
    assert calls == [[]] and metrics.exists()  # the constructor deletes through the hook, and only there
    assert writer.metrics_file_path == str(metrics)


def test_lightnings_csv_writer_appends_under_metrics_keys(tmp_path):
    metrics = write_metrics(tmp_path, "a,step\n1,0\n")

    class Keeping(ExperimentWriter):
        def _check_log_dir_exists(self) -> None:
            self.metrics_keys = ["a", "step"]

    writer = Keeping(log_dir=str(tmp_path))
    writer.log_metrics({"a": 2}, step=1)
    writer.save()
    assert metrics.read_text().splitlines() == ["a,step", "1,0", "2,1"]
    writer.log_metrics({"b": 3}, step=2)  # a new column: the header is rewritten, old rows kept
    writer.save()
    assert metrics.read_text().splitlines() == ["a,b,step", "1,,0", "2,,1", ",3,2"]


def test_a_resumed_csv_logger_appends_to_the_metrics_of_the_run_it_continues(tmp_path):
    def logger() -> ResumableCSVLogger:
        return ResumableCSVLogger(save_dir=tmp_path, name="csv", version="")

    first = logger()
    first.log_metrics({"train/loss": 1.0}, step=0)
    first.log_metrics({"train/loss": 0.75}, step=1)
    first.finalize("success")

    resumed = logger()
    assert isinstance(resumed.experiment, _AppendingWriter)
    assert resumed.experiment is resumed.experiment is resumed._experiment  # Lightning's cache attribute
    resumed.log_metrics({"train/loss": 0.5}, step=2)
    resumed.log_metrics({"val/psnr": 30.0}, step=2)  # a column the first run never wrote
    resumed.finalize("success")

    with open(tmp_path / "csv" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["step"], r["train/loss"], r["val/psnr"]) for r in rows] == [
        ("0", "1.0", ""), ("1", "0.75", ""), ("2", "0.5", ""), ("2", "", "30.0")]


def test_lightnings_own_csv_logger_starts_the_file_afresh(tmp_path):
    """The behaviour ResumableCSVLogger exists to change; when this fails, Lightning appends itself."""
    write_metrics(tmp_path / "csv", "step,train/loss\n0,1.0\n")
    plain = CSVLogger(save_dir=tmp_path, name="csv", version="")
    with pytest.warns(UserWarning, match="will be deleted"):
        plain.log_metrics({"train/loss": 0.5}, step=1)
    plain.finalize("success")
    assert (tmp_path / "csv" / "metrics.csv").read_text().splitlines() == ["step,train/loss", "1,0.5"]
