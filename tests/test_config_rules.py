"""Every numeric key a user sets is checked before any work: one line naming the key, no traceback."""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from typing import Annotated

import pytest
from omegaconf import OmegaConf

from denoise.cli.config_rules import (
    EXTERNAL,
    EvalEntry,
    PredictEntry,
    TrainEntry,
    check_eval_config,
    check_predict_config,
    check_train_config,
    checks,
    node_problems,
    resolved,
    stale_external_rules,
)
from denoise.errors import ConfigError
from denoise.lit.blind_spot import TrainPD
from denoise.nets.base import Network, network_name
from denoise.ops.inference import InferenceSettings
from denoise.rules import checked, integer
from tests.conftest import CONFIGS, compose_entry, compose_train, run_entry

# (key, bad value): zero, negative, out of range and wrong type, as `key=value` on the command
# line gives them (Hydra parses `abc` to a string, `nan` to a float, `[0.9]` to a list), each in a
# config whose node at that key takes it (the overrides before the list).
BAD_TRAIN_VALUES = {
    (): [
        ("seed", -1), ("seed", 2**32), ("seed", "abc"), ("seed", 1.5),
        ("trainer.max_steps", 0), ("trainer.max_steps", -5), ("trainer.max_steps", -1.0),
        ("trainer.max_steps", 2.5), ("trainer.max_steps", "abc"),
        ("trainer.val_check_interval", 0), ("trainer.val_check_interval", -1), ("trainer.val_check_interval", 1.5),
        ("trainer.val_check_interval", "often"),
        ("trainer.log_every_n_steps", 0), ("trainer.log_every_n_steps", "x"),
        ("trainer.max_time", "soon"), ("trainer.max_time", "10:00"), ("trainer.max_time", {"minutes": -1}),
        ("trainer.max_time", {"weeks": 1}), ("trainer.max_time", 600),
        ("trainer.limit_val_batches", -1), ("trainer.limit_val_batches", 1.5),
        ("trainer.limit_train_batches", 0), ("trainer.limit_train_batches", -0.5),
        ("trainer.accumulate_grad_batches", 0),
        ("trainer.gradient_clip_val", -1), ("trainer.gradient_clip_val", "abc"),
        ("trainer.devices", 0), ("trainer.devices", -2), ("trainer.num_nodes", 0), ("trainer.num_nodes", "two"),
        ("model.optimizer.lr", 0), ("model.optimizer.lr", -1), ("model.optimizer.lr", "abc"),
        ("model.optimizer.lr", float("nan")), ("model.optimizer.lr", float("inf")),
        ("model.optimizer.weight_decay", -0.1), ("model.optimizer.weight_decay", "none"),
        ("model.optimizer.betas", [0.9]), ("model.optimizer.betas", [0.9, 1.5]), ("model.optimizer.betas", 0.9),
        ("model.optimizer.eps", 0),
        ("model.scheduler.milestones", [0.5, 2]), ("model.scheduler.milestones", 0.5),
        ("model.scheduler.gamma", 0), ("model.scheduler.gamma", -1),
        ("model.train_pd.factor", 0), ("model.train_pd.factor", -2), ("model.train_pd.factor", 2.5),
        ("model.train_pd.factor", "two"),
        ("model.train_pd.pad", -1), ("model.train_pd.layout", "grid"), ("model.train_pd.keep", "some"),
        ("model.val_protocol", "rgb"),
        ("model.data_scale", 0), ("model.data_scale", -255),
        ("model.net.in_channels", 0),
        ("model.net.dim", 0), ("model.net.dim", 15), ("model.net.num_blocks", [1, 0, 1]),
        ("model.net.num_blocks", [1, 1]), ("model.net.num_refinement_blocks", -1),
        ("model.net.channel_heads", 2), ("model.net.window_heads", [1, -1]), ("model.net.head_dim", 0),
        ("model.net.window", 0), ("model.net.overlap", 1.0), ("model.net.ffn_expansion", 0),
        ("model.net.form", "full"), ("model.net.gcsa_mode", "bad"), ("model.net.skip_fusion", "add"),
        ("model.net.block_layout", ["gcsa", "foo"]), ("model.net.block_layout", [["gcsa"], ["ffn"]]),
        ("model.net.block_layout", []), ("model.net.block_layout", "gcsa"),
        ("model.net.block_options", {"n_win": 4}), ("model.net.block_options", {"dim": 8}),
        ("data.crop_size", 0), ("data.crop_size", -4), ("data.crop_size", "big"), ("data.crop_size", 64.5),
        ("data.batch_size", 0), ("data.batch_size", -1), ("data.batch_size", True),
        ("data.epoch_length", 0), ("data.num_workers", -1),
        ("data.val_size", 0), ("data.val_size", None), ("data.upscale", 0),
        ("data.seed", -1),
        ("callbacks.ema.decay", 1.5), ("callbacks.ema.decay", -0.1), ("callbacks.ema.decay", "slow"),
        ("callbacks.ema.update_every_n_steps", 0), ("callbacks.ema.update_starting_at_step", -1),
        ("callbacks.divergence_guard.factor", 1), ("callbacks.divergence_guard.factor", "big"),
        ("callbacks.divergence_guard.patience", 0), ("callbacks.divergence_guard.window", 2.5),
        ("callbacks.divergence_guard.warmup", -1), ("callbacks.divergence_guard.snapshot_every", 0),
        ("callbacks.divergence_guard.max_rollbacks", True),
    ],
    ("model/net=dbsn_small",): [
        ("model.net.channels", -1), ("model.net.num_blocks", 0), ("model.net.phase_strides", [1]),
        ("model.net.form", "full"),
    ],
    ("model/net=bsn_hcanet_small",): [
        ("model.net.heads", [1, 0, 1]), ("model.net.heads", [1, 2]), ("model.net.num_blocks", [1, 0, 1]),
        ("model.net.num_refinement_blocks", -1),
        ("model.net.ffn_expansion", 0), ("model.net.dim", 0), ("model.net.dim", 15),
        ("model.net.dilations", [0]), ("model.net.dilations", []),
    ],
    ("experiment=hsi_bsn",): [
        ("model.net.groups", 1), ("model.net.hidden", 0), ("model.net.spatial.dim", 0),
        ("model.net.spatial.in_channels", 0), ("model.net.spatial.num_blocks", [0]),
        ("model.net.spatial.num_refinement_blocks", -1), ("model.net.spatial.channel_heads", [1, 0]),
        ("model.net.spatial.window_heads", "two"), ("model.net.spatial.head_dim", 0), ("model.net.spatial.window", 0),
        ("model.net.spatial.overlap", 1.0), ("model.net.spatial.ffn_expansion", 0), ("model.net.spatial.form", "full"),
        ("model.net.spatial.gcsa_mode", "bad"), ("model.net.spatial.skip_fusion", "add"),
        ("model.net.spatial.block_layout", []), ("model.net.spatial.block_options", {"dim": 8}),
        ("data.bands", 0), ("data.val_crop", -1), ("data.crops_per_image", 0), ("data.holdout", 1.0),
        ("data.holdout_axis", "depth"), ("data.normalize", "log"),
    ],
    ("experiment=demo_distill",): [
        ("model.student.in_channels", -3), ("model.student.dim", 0), ("model.student.levels", 0),
        ("model.student.negative_slope", -0.1),
        ("model.optimizer.lr", 0), ("model.scheduler.gamma", 0), ("model.data_scale", 0),
    ],
    ("experiment=demo_distill", "model/student=hcanet"): [
        ("model.student.heads", [0]), ("model.student.num_blocks", [1, 0, 1]), ("model.student.dim", 0),
        ("model.student.num_refinement_blocks", -1), ("model.student.ffn_expansion", 0),
        ("model.student.dilations", [1, 0]),
    ],
    ("data=folder",): [("data.crops_per_image", 0), ("data.val_fraction", 1.0), ("data.val_fraction", "abc")],
    ("data=sidd",): [("data.crops_per_image", 0), ("data.val_blocks", -1), ("data.val_blocks", "abc")],
    ("data=dnd",): [("data.images", 0)],
    ("data=sidd_val",): [("data.blocks", -1)],
    ("data=sidd_bench",): [("data.blocks", 1.5)],
}
BAD_TRAIN_CASES = [(overrides, key, value) for overrides, bad in BAD_TRAIN_VALUES.items() for key, value in bad]
# The blocks of inference settings of the training configs, and the config that has each.
INFERENCE_BLOCKS = {
    "model.inference": (), "model.benchmark_inference": (), "model.teacher_inference": ("experiment=demo_distill",),
}
BAD_INFERENCE_VALUES = [
    ("pd_factor", 0), ("pd_factor", -1), ("pd_factor", 1.5), ("pd_pad", -1), ("r3_passes", -1),
    ("r3_passes", "eight"), ("r3_p", 1.5), ("r3_p", -0.1), ("r3_seed", "x"), ("r3_pad", -2),
    ("tile_size", -1), ("tile_size", 2.5), ("tile_overlap", -1), ("precision", "16"),
]


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory):
    return compose_train(["callbacks=ema"], tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def train_configs(tmp_path_factory):
    """The composed config of each set of overrides of BAD_TRAIN_VALUES (with callbacks=ema)."""
    run_dir = tmp_path_factory.mktemp("configs")
    return {overrides: compose_train([*overrides, "callbacks=ema"], run_dir) for overrides in BAD_TRAIN_VALUES}


def with_value(cfg, key: str, value):
    changed = copy.deepcopy(cfg)
    OmegaConf.update(changed, key, value, force_add=True)
    return changed


def one_line_error(check, cfg) -> str:
    with pytest.raises(ConfigError) as error:
        check(cfg)
    message = str(error.value)
    assert "\n" not in message
    return message


def checked_keys(cfg, entry=TrainEntry) -> set[str]:
    """The keys of ``cfg`` that a rule checks (blocks that check themselves are named by their key)."""
    return {path for path, _, _ in checks(resolved(cfg), entry)}


def shipped_train_configs():
    for path in sorted((CONFIGS / "experiment").glob("*.yaml")):
        yield [f"experiment={path.stem}", "callbacks=ema"]
    for path in sorted((CONFIGS / "model" / "net").glob("*.yaml")):
        yield [f"model/net={path.stem}"]
    for path in sorted((CONFIGS / "model" / "student").glob("*.yaml")):
        yield ["experiment=demo_distill", f"model/student={path.stem}"]
    for path in sorted((CONFIGS / "data").glob("*.yaml")):
        yield [f"data={path.stem}"]


def test_the_walk_covers_every_rule(tmp_path):
    """Every key a rule checks in any shipped config has a bad value above: a new rule gets a test."""
    tested = {key for _, key, _ in BAD_TRAIN_CASES} | set(INFERENCE_BLOCKS)
    configs = [compose_train(overrides, tmp_path) for overrides in shipped_train_configs()]
    checked = set().union(*map(checked_keys, configs))
    assert checked - tested == set(), "checked by a rule but given no bad value in BAD_TRAIN_VALUES: add one"
    numeric = {"pd_factor", "pd_pad", "r3_passes", "r3_p", "r3_seed", "r3_pad", "tile_size", "tile_overlap"}
    assert numeric <= set(InferenceSettings.keys())
    assert numeric <= {key for key, _ in BAD_INFERENCE_VALUES}


def test_no_rule_checks_a_setting_that_does_not_exist(tmp_path):
    """A rule is written on its parameter or field (``Annotated``), so renaming one renames what the
    rule checks; the rules of classes whose code carries none are checked against the class, and
    the keys the entry points read against their configs."""
    assert stale_external_rules(EXTERNAL) == []

    @dataclass(frozen=True)
    class Renamed:
        factor: Annotated[int, integer(1)]
        pd_factor: Annotated[int, integer(1)]  # TrainPD calls it factor

    assert stale_external_rules({TrainPD: (Renamed, TrainPD)}) == ["Renamed.pd_factor (not a setting of TrainPD)"]
    for entry, name in ((TrainEntry, "train"), (EvalEntry, "eval"), (PredictEntry, "predict")):
        keys = set(compose_entry(name, ["ckpt_path=x.ckpt"], tmp_path))
        assert {field.name for field in fields(entry)} <= keys, name


class LabNet(Network):
    """A network of a researcher's own package: its rules come with it, no table to extend."""

    @checked(network_name)
    def __init__(self, in_channels: int = 3, width: Annotated[int, integer(1)] = 8):
        super().__init__(in_channels)


def test_a_network_outside_the_package_is_checked_by_the_rules_it_writes():
    net = {"_target_": f"{__name__}.LabNet", "in_channels": 0, "width": 0}
    assert node_problems({"model": {"net": net}}, TrainEntry) == [
        "model.net.in_channels=0: expected an integer >= 1", "model.net.width=0: expected an integer >= 1",
    ]
    with pytest.raises(ConfigError, match=r"^LabNet: width=0: expected an integer >= 1$"):
        LabNet(width=0)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml")))
def test_every_shipped_config_passes(experiment, tmp_path):
    check_train_config(compose_train([f"experiment={experiment}", "callbacks=ema"], tmp_path))


@pytest.mark.parametrize("choice", [f"model/net={p.stem}" for p in sorted((CONFIGS / "model" / "net").glob("*.yaml"))]
                         + [f"model/student={p.stem}" for p in sorted((CONFIGS / "model" / "student").glob("*.yaml"))])
def test_every_shipped_network_passes(choice, tmp_path):
    student = choice.startswith("model/student")
    check_train_config(compose_train([*(["experiment=demo_distill"] if student else []), choice], tmp_path))


def test_debug_sweep_and_entry_configs_pass(tmp_path):
    check_train_config(compose_train(["debug=fast", "trainer=ddp", "hparams_search=demo_optuna"], tmp_path))
    check_eval_config(compose_entry("eval", ["ckpt_path=x.ckpt", "data=sidd_val"], tmp_path))
    check_predict_config(compose_entry("predict", ["ckpt_path=x.ckpt"], tmp_path))


@pytest.mark.parametrize(("overrides", "key", "value"), BAD_TRAIN_CASES, ids=lambda v: str(v))
def test_a_bad_training_value_is_one_line_naming_key_value_and_rule(train_configs, overrides, key, value):
    message = one_line_error(check_train_config, with_value(train_configs[overrides], key, value))
    assert message.startswith(f"{key}={value!r}: expected "), message


@pytest.mark.parametrize(("key", "value"), BAD_INFERENCE_VALUES, ids=lambda v: str(v))
def test_a_bad_inference_value_is_one_line_in_train_eval_and_predict(tmp_path, key, value):
    shown = f"{key}={value!r}"
    for block, overrides in INFERENCE_BLOCKS.items():
        cfg = compose_train(list(overrides), tmp_path)
        message = one_line_error(check_train_config, with_value(cfg, f"{block}.{key}", value))
        assert message.startswith(f"{block}: {shown}"), message
    for entry, check in (("eval", check_eval_config), ("predict", check_predict_config)):
        cfg = compose_entry(entry, ["ckpt_path=x.ckpt"], tmp_path)
        message = one_line_error(check, with_value(cfg, f"inference.{key}", value))
        assert message.startswith(f"inference: {shown}"), message


def test_eval_keys_and_unknown_inference_keys(tmp_path):
    cfg = compose_entry("eval", ["ckpt_path=x.ckpt"], tmp_path)
    assert one_line_error(check_eval_config, with_value(cfg, "limit", 0)).startswith("limit=0: expected")
    assert one_line_error(check_eval_config, with_value(cfg, "panels", -1)).startswith("panels=-1: expected")
    assert one_line_error(check_eval_config, with_value(cfg, "data.val_size", 0)).startswith("data.val_size=0: expected")
    blocks = compose_entry("eval", ["ckpt_path=x.ckpt", "data=sidd_val"], tmp_path)
    assert one_line_error(check_eval_config, with_value(blocks, "data.blocks", -1)).startswith("data.blocks=-1: expected")
    assert one_line_error(check_eval_config, with_value(cfg, "protocol", "rgb")).startswith("protocol='rgb': expected")
    assert one_line_error(check_eval_config, with_value(cfg, "submission", "kaggle")).startswith(
        "submission='kaggle': expected"
    )
    assert "inference.tiles is not an inference setting" in one_line_error(
        check_eval_config, with_value(cfg, "inference.tiles", 3)
    )


def test_every_bad_value_of_a_config_is_in_the_one_line(demo_config):
    cfg = with_value(with_value(demo_config, "model.optimizer.lr", -1), "model.train_pd.factor", 0)
    message = one_line_error(check_train_config, cfg)
    assert "model.optimizer.lr=-1" in message and "model.train_pd.factor=0" in message


def test_train_entry_point_prints_one_line_and_exits_1(demo_config, capsys):
    import train as train_entry

    for key, value, expected in (
        ("model.train_pd.factor", 0, "an integer >= 1"),
        ("model.optimizer.lr", -1, "a number > 0"),
        ("trainer.val_check_interval", 0, "an integer >= 1 or a number in (0, 1]"),
    ):
        with pytest.raises(SystemExit) as stop:
            train_entry.main(with_value(demo_config, key, value))
        assert stop.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: {key}={value}: expected {expected}"]


@pytest.mark.slow
def test_bad_values_through_train_py(tmp_path):
    """The command lines users type: one line on stderr, exit status 1, no traceback."""
    for args, line in (
        (["model.train_pd.factor=0"], "error: model.train_pd.factor=0: expected an integer >= 1"),
        (["model.optimizer.lr=-1e-3"], "error: model.optimizer.lr=-0.001: expected a number > 0"),
        (["callbacks=ema", "callbacks.ema.decay=1.5"], "error: callbacks.ema.decay=1.5: expected a number in [0, 1]"),
    ):
        result = run_entry("train.py", args, tmp_path / "run")
        assert result.returncode == 1, result.stderr[-2000:]
        assert "Traceback" not in result.stderr and "Error executing job" not in result.stderr
        assert result.stderr.strip().splitlines()[-1] == line
        assert not (tmp_path / "run" / "checkpoints").exists()  # refused before any work
