from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig

# One thread per process, here and in the subprocesses tests start (train.py, DDP workers):
# the tests' networks are small, and two OpenMP threads per process on a 2-core machine shared
# with other processes spin against each other and run 5-100x slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def compose_train(overrides: list[str], run_dir: Path):
    """The composed train config as `python train.py <overrides>` would see it, run dir ``run_dir``."""
    return compose_entry("train", overrides, run_dir)


def compose_entry(name: str, overrides: list[str], run_dir: Path):
    """The composed config of an entry point (train, eval, predict) with run dir ``run_dir``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS), version_base="1.3"):
        cfg = compose(
            name,
            overrides=[*overrides, f"paths.output_dir={run_dir}", f"paths.log_dir={run_dir}/logs"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    return cfg


def compose_net(name: str, group: str = "net"):
    """The config of ``configs/model/<group>/<name>.yaml`` (group ``net`` or ``student``)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONFIGS / "model" / group), version_base="1.3"):
        return compose(name)


def build_net(name: str, dtype=torch.float32, **overrides) -> torch.nn.Module:
    """The network of ``configs/model/net/<name>.yaml`` with ``overrides``, seeded, in eval mode."""
    from hydra.utils import instantiate

    cfg = compose_net(name)
    for key, value in overrides.items():
        cfg[key] = value
    torch.manual_seed(0)
    return instantiate(cfg).to(dtype).eval()


@pytest.fixture(scope="module")
def dbsn() -> torch.nn.Module:
    """A finite receptive field (radius 11: 5x5 masked conv + 3 blocks dilated by 3), phases 2 and 3."""
    return build_net("dbsn_small")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


@pytest.fixture
def shared_fixtures() -> Path:
    """Outputs of the official TBSN and AP-BSN codes (../shared/fixtures), for the importer tests."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return SHARED_FIXTURES


def run_entry(script: str, args: list[str], run_dir: Path, env: dict | None = None,
              timeout: int = 600) -> subprocess.CompletedProcess:
    """``python <script> <args>`` (train.py, eval.py, predict.py) from the repo root, run dir ``run_dir``."""
    return subprocess.run(
        [sys.executable, script, *args, f"hydra.run.dir={run_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False,
    )
