"""The configs take each default from the code that uses it: written once, composed as before."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from denoise.cli.config_store import nodes
from denoise.lit import BlindSpotModule, DistillationModule, load_model
from denoise.lit.base import OPTIMIZER
from denoise.lit.blind_spot import TrainPD
from denoise.lit.distill import STUDENT_INFERENCE_KEYS, TEACHER_INFERENCE
from denoise.lit.importing import write_checkpoint
from denoise.lit.schedule import ScheduleSettings
from denoise.ops.settings import InferenceSettings
from tests.conftest import CONFIGS, compose_entry, compose_train


def plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True)


def test_the_composed_defaults_are_the_codes(tmp_path):
    bsn = plain(compose_train(["experiment=sidd_bsn"], tmp_path).model)
    defaults = dataclasses.asdict(InferenceSettings())
    assert {key: bsn["inference"][key] for key in defaults} == {**defaults, "r3_passes": 8}  # the recipe's 8
    assert bsn["scheduler"] == {"milestones": list(ScheduleSettings().milestones), "gamma": ScheduleSettings().gamma}
    assert bsn["train_pd"] == dataclasses.asdict(TrainPD())
    assert (bsn["data_scale"], bsn["val_protocol"], bsn["compile"]) == (255.0, "srgb", False)
    distill = plain(compose_train(["experiment=demo_distill"], tmp_path).model)
    assert distill["optimizer"] == {**OPTIMIZER, "betas": list(OPTIMIZER["betas"]), "lr": 1.0e-3}  # the recipe's lr
    assert distill["teacher_inference"] == {**TEACHER_INFERENCE, "r3_pad": 2}  # the recipe's pad
    assert distill["inference"] == {key: defaults[key] for key in STUDENT_INFERENCE_KEYS}
    assert (distill["teacher_ckpt"], distill["data_scale"]) == (None, 1.0)
    for entry in ("eval", "predict"):
        assert plain(compose_entry(entry, ["ckpt_path=x.ckpt"], tmp_path).inference) == dict.fromkeys(defaults)


def test_the_model_files_only_choose_parts():
    """No default is written in configs/model/{bsn,distill}.yaml: they list the nodes they compose."""
    for name in ("bsn", "distill"):
        assert list(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml")) == ["defaults"], name
    assert not (CONFIGS / "inference").exists()  # the group is built from InferenceSettings alone
    assert set(STUDENT_INFERENCE_KEYS) <= set(InferenceSettings.keys())
    assert set(TEACHER_INFERENCE) <= set(InferenceSettings.keys())


@pytest.mark.parametrize(
    ("entry", "override", "key", "value"),
    [
        ("train", "model.inference.pd_factor=1", "model.inference.pd_factor", 1),
        ("train", "model.scheduler.milestones=[0.5]", "model.scheduler.milestones", [0.5]),
        ("train", "model.train_pd.factor=2", "model.train_pd.factor", 2),
        ("train", "model.optimizer.lr=1e-3", "model.optimizer.lr", 1e-3),
        ("eval", "inference.precision=bf16", "inference.precision", "bf16"),
        ("predict", "inference.r3_passes=8", "inference.r3_passes", 8),
    ],
)
def test_command_lines_set_the_keys_they_set(tmp_path, entry, override, key, value):
    selected = OmegaConf.select(compose_entry(entry, ["ckpt_path=x.ckpt", override], tmp_path), key)
    assert (OmegaConf.to_container(selected) if OmegaConf.is_config(selected) else selected) == value


def test_the_students_inference_keys_are_settable_and_pd_r3_stay_off(tmp_path):
    cfg = compose_train(["experiment=demo_distill", "model.inference.precision=bf16", "model.inference.tile_size=0"],
                        tmp_path)
    model = instantiate(cfg.model)
    assert (model.inference.precision, model.inference.tile_size) == ("bf16", 0)
    assert (model.inference.pd_factor, model.inference.r3_passes) == (1, 0)
    assert model.teacher_settings == InferenceSettings.from_config({**TEACHER_INFERENCE, "r3_pad": 2})


def test_nodes_are_plain_mappings_of_config_values(tmp_path):
    """No node is a typed schema: a bad value reaches the class's own one-line check instead of
    stopping Hydra's composition with a multi-line error."""
    assert all(type(node) is dict for node in nodes().values())
    cfg = compose_train(["model.inference.r3_passes=eight", "model.scheduler.gamma=abc"], tmp_path)
    assert (cfg.model.inference.r3_passes, cfg.model.scheduler.gamma) == ("eight", "abc")


# The hyper-parameters of checkpoints written when configs/model/*.yaml listed their defaults.
EARLIER_BSN = {
    "net": {"_target_": "denoise.nets.DBSN", "in_channels": 3, "channels": 8, "num_blocks": 1,
            "phase_strides": [2, 3], "form": "phase"},
    "optimizer": {"_target_": "torch.optim.AdamW", "lr": 3e-4, "weight_decay": 0.01, "betas": [0.9, 0.999]},
    "scheduler": {"milestones": [0.4, 0.8], "gamma": 0.1},
    "train_pd": {"factor": 5, "layout": "batch", "pad": 0, "keep": "first"},
    "inference": dict(dataclasses.asdict(InferenceSettings()), precision="32"),
    "benchmark_inference": {}, "data_scale": 255.0, "val_protocol": "srgb", "compile": False,
}
EARLIER_DISTILL = {
    "student": {"_target_": "denoise.nets.unet.UNet", "in_channels": 3, "dim": 8, "levels": 2, "negative_slope": 0.1},
    "optimizer": EARLIER_BSN["optimizer"], "teacher_ckpt": None, "scheduler": EARLIER_BSN["scheduler"],
    "teacher_inference": {"pd_factor": 2, "r3_passes": 1, "r3_p": 0.16, "r3_pad": 0, "tile_size": None},
    "inference": {"tile_size": 512, "tile_overlap": 64}, "data_scale": 1.0, "val_protocol": "srgb", "compile": False,
}


@pytest.mark.parametrize(("module", "hparams"), [(BlindSpotModule, EARLIER_BSN), (DistillationModule, EARLIER_DISTILL)])
def test_checkpoints_written_with_the_earlier_configs_load(tmp_path, module, hparams):
    torch.manual_seed(0)
    path = write_checkpoint(module(**hparams), tmp_path / "earlier.ckpt", imported_from={})
    loaded = load_model(path)
    assert loaded.inference == module(**hparams).inference
    if module is DistillationModule:
        assert loaded.teacher_settings == InferenceSettings.from_config(EARLIER_DISTILL["teacher_inference"])
