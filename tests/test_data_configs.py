"""Every configs/data and configs/noise file composes with train.yaml and instantiates."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

import denoise.cli.config_store  # noqa: F401  (the config nodes built from the code's defaults)
from denoise.data.datamodules.base import DenoisingDataModule, EvaluationDataModule, TrainingDataModule
from tests.data_fixtures import write_dnd, write_sidd_benchmark, write_sidd_medium, write_sidd_validation

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NOISES = sorted(p.stem for p in (CONFIGS / "noise").glob("*.yaml"))
DATAS = sorted(p.stem for p in (CONFIGS / "data").glob("*.yaml") if p.stem != "demo")  # demo: the lead's tests
pytestmark = pytest.mark.skipif(not (CONFIGS / "train.yaml").is_file(), reason="configs/train.yaml not written yet")


def composed(overrides):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=overrides)


@pytest.mark.parametrize("name", NOISES)
def test_noise_configs_build_callables_that_keep_the_shape(name):
    noise = instantiate(composed([f"noise={name}"]).noise)
    image = torch.rand(9, 16, 16)
    out = noise(image, torch.Generator().manual_seed(0))
    assert out.shape == image.shape and torch.equal(out, noise(image, torch.Generator().manual_seed(0)))


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("roots")
    write_sidd_medium(base / "sidd", scenes=1, size=(64, 64))
    write_sidd_validation(base / "sidd", n=1, k=2, size=32)
    write_sidd_benchmark(base / "sidd", n=1, k=2, size=32)
    write_dnd(base / "dnd", images=1, boxes=2)
    import numpy as np
    from PIL import Image

    (base / "noisy").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(base / "noisy" / "a.png")
    np.save(base / "cube.npy", np.random.default_rng(0).random((8, 40, 48)).astype(np.float32))
    return base


SETTINGS = {
    "sidd": lambda r: ["noise=none", f"data.root={r / 'sidd'}", "data.crop_size=32", "data.num_workers=0"],
    "sidd_val": lambda r: [f"data.root={r / 'sidd'}"],
    "sidd_bench": lambda r: [f"data.root={r / 'sidd'}"],
    "dnd": lambda r: [f"data.root={r / 'dnd'}"],
    "folder": lambda r: ["noise=none", f"data.noisy_dir={r / 'noisy'}", "data.crop_size=32", "data.num_workers=0"],
    "hsi": lambda r: ["noise=mixture", f"data.files=[{r / 'cube.npy'}]", "data.bands=8", "data.crop_size=32"],
}


@pytest.mark.parametrize("name", DATAS)
def test_data_configs_compose_instantiate_and_set_up(name, roots):
    if name not in SETTINGS:
        pytest.skip(f"data={name} is not a datamodule of this suite")
    cfg = composed([f"data={name}", *SETTINGS[name](roots)])
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert datamodule.in_channels == (8 if name == "hsi" else 3)
    loader = datamodule.train_dataloader() if hasattr(datamodule, "train_set") and datamodule.train_set else None
    if loader is not None:
        assert next(iter(loader))["noisy"].shape[-2:] == (32, 32)
    else:
        batch = next(iter(datamodule.test_dataloader()))
        assert batch["noisy"].shape[0] == 1 and "name" in batch and "index" in batch


def test_every_datamodule_follows_the_datamodule_contract():
    """Training sets (demo included) and evaluation-only sets, each on its base of the contract."""
    classes = {path.stem: get_class(composed([f"data={path.stem}"]).data._target_)
               for path in sorted((CONFIGS / "data").glob("*.yaml"))}
    assert all(issubclass(cls, DenoisingDataModule) for cls in classes.values())
    training = {name for name, cls in classes.items() if issubclass(cls, TrainingDataModule)}
    assert training == {"demo", "folder", "hsi", "sidd"}
    assert all(issubclass(classes[name], EvaluationDataModule) for name in set(classes) - training)


def test_training_datamodules_have_the_common_keys():
    for name in ("sidd", "folder", "hsi"):
        data = composed([f"data={name}"]).data
        for key in ("crop_size", "batch_size", "num_workers", "epoch_length", "augment", "noise"):
            assert key in data, f"data={name} lacks {key}"


def test_hsi_experiment_ties_the_network_to_the_band_count():
    cfg = composed(["experiment=hsi_bsn", "data.bands=31"])
    assert cfg.model.net.in_channels == 31 and cfg.model.val_protocol == "hsi" and cfg.model.data_scale == 1.0
    assert cfg.data._target_.endswith("HSIDataModule") and cfg.model.train_pd.factor in (1, 2)
    assert cfg.data.crop_size % cfg.model.train_pd.factor == 0


@pytest.mark.parametrize("noise", ["hsi_gaussian", "hsi_noniid", "stripe", "deadline", "impulse", "mixture"])
def test_hsi_experiment_takes_every_hyperspectral_noise(noise):
    """The recipe sets no key of one noise type, so `experiment=hsi_bsn noise=<any>` builds."""
    cfg = composed(["experiment=hsi_bsn", f"noise={noise}"])
    assert callable(instantiate(cfg.noise))
