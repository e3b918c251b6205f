"""The signature nodes (denoise/cli/config_store.py): every key of a class's config comes from its
code with the code's default, and a recipe under configs/ writes only what it changes."""

from __future__ import annotations

import inspect
from dataclasses import fields

import pytest
from hydra.utils import get_object, instantiate
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import WandbLogger
from omegaconf import OmegaConf

from denoise.cli.config_store import TRAINER_LEFT_OUT, config_values, nodes, parameters_of
from denoise.data.noise import MixtureNoise
from denoise.lit import FinalValidation
from denoise.nets.hcanet import HCANetOptions
from denoise.nets.tbsn import TBSNOptions
from tests.conftest import CONFIGS, compose_train

# The groups whose recipes choose a signature node for every object they build.
GROUPS = ("data", "noise", "model/net", "model/student", "callbacks", "logger", "trainer")
RECIPES = [path for group in GROUPS for path in sorted((CONFIGS / group).glob("*.yaml"))]


def chosen_nodes(path) -> list[tuple[dict, dict]]:
    """(node, the recipe's own values at the node's package) for each signature node ``path`` chooses."""
    recipe = OmegaConf.to_container(OmegaConf.load(path))
    found = []
    for entry in (recipe or {}).get("defaults", []):
        if not isinstance(entry, dict):
            continue
        (key, name), = entry.items()
        group, _, package = key.lstrip("/").partition("@")
        if group.rpartition("/")[2] != "signature":
            continue
        group = group if key.startswith("/") else f"{path.parent.name}/{group}"
        own = recipe if package == "_here_" else recipe.get(package, {})
        found.append((nodes()[(group, name)], own))
    return found


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_a_recipe_writes_only_what_differs_from_the_code(path):
    for node, own in chosen_nodes(path):
        repeated = {key: value for key, value in own.items() if key in node and node[key] == value}
        assert not repeated, f"{path.name} repeats the defaults of {node['_target_']}: {repeated}"
        assert "_target_" not in own, f"{path.name}: the node names the class"


def targets(value) -> list[str]:
    """Every ``_target_`` a recipe spells, at any depth."""
    found = []
    if isinstance(value, dict):
        found += [value["_target_"]] if "_target_" in value else []
        value = list(value.values())
    for item in value if isinstance(value, list) else []:
        found += targets(item)
    return found


@pytest.mark.parametrize("path", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_a_recipe_names_a_class_only_through_its_node(path):
    """A class with parameters comes from its signature node, so that its defaults stay in its code;
    only one without any (the trainer's checkpoint plugin) is spelled out."""
    for target in targets(OmegaConf.to_container(OmegaConf.load(path))):
        assert parameters_of(get_object(target)) == {}, f"{path.name}: {target} has no node"


def test_nodes_take_where_keyword_arguments_go():
    """Keyword arguments handed on are keys too: to the base class's constructor (SIDD validation
    blocks), or to what a function builds (W&B's logger)."""
    assert {"root", "blocks", "noisy_file", "gt_file", "num_workers"} <= set(nodes()[("data/signature", "sidd_val")])
    wandb = nodes()[("logger/signature", "wandb")]
    assert wandb["offline"] is None  # wandb_logger's own default, not WandbLogger's False
    assert set(inspect.signature(WandbLogger).parameters) - {"kwargs"} <= set(wandb)
    assert nodes()[("noise/signature", "mixture")]["band_fraction"] == MixtureNoise().band_fraction


def test_the_trainer_node_is_lightnings_signature_but_what_train_py_passes():
    trainer = nodes()[("trainer/signature", "lightning")]
    assert trainer["_target_"] == "lightning.pytorch.Trainer"
    assert (trainer["max_time"], trainer["max_steps"]) == (None, -1)
    assert set(trainer) - {"_target_"} == set(inspect.signature(Trainer).parameters) - set(TRAINER_LEFT_OUT)


@pytest.mark.parametrize(
    ("overrides", "key", "value"),
    [
        (["trainer.max_time=00:00:10:00"], "trainer.max_time", "00:00:10:00"),
        (["trainer.gradient_clip_val=0.5"], "trainer.gradient_clip_val", 0.5),
        (["callbacks.model_checkpoint.save_top_k=3"], "callbacks.model_checkpoint.save_top_k", 3),
        (["callbacks=ema", "callbacks.ema.decay=0.9"], "callbacks.ema.decay", 0.9),
        (["logger.csv.flush_logs_every_n_steps=10"], "logger.csv.flush_logs_every_n_steps", 10),
        (["data.upscale=1"], "data.upscale", 1),
        (["noise=gaussian", "noise.clip=true"], "noise.clip", True),
    ],
)
def test_every_parameter_is_a_key_of_the_command_line(tmp_path, overrides, key, value):
    """Without +: the key is in the composed config, as its code default until a recipe sets it."""
    assert OmegaConf.select(compose_train(overrides, tmp_path), key) == value


def test_the_trainer_builds_with_the_callbacks_and_loggers_train_py_passes(tmp_path):
    cfg = compose_train(["trainer=cpu"], tmp_path)
    callback = FinalValidation()
    trainer = instantiate(cfg.trainer, callbacks=[callback], logger=False, precision="32-true")
    assert callback in trainer.callbacks and trainer.loggers == []
    assert (trainer.max_steps, trainer.precision) == (cfg.trainer.max_steps, "32-true")


@pytest.mark.parametrize(("group", "name", "options"), [
    ("model/net/signature", "tbsn", TBSNOptions), ("model/net/signature", "bsn_hcanet", HCANetOptions),
    ("model/student/signature", "hcanet", HCANetOptions),
])
def test_a_networks_options_dataclass_gives_its_keys(group, name, options):
    """TBSN and HCANet hand ``**options`` on to a dataclass: its fields are the node's keys."""
    node = nodes()[(group, name)]
    assert {field.name: config_values(field.default) for field in fields(options)}.items() <= node.items()
