"""The numeric keys a user sets, checked before any work starts.

One table per entry point maps a config key to a rule (what values it allows, in words). A bad
value stops the run with one line naming the key, the value and what is allowed, before data are
read or a model is built: a value the config accepts but the code cannot use (``factor=0`` divides
by zero, a negative learning rate is refused deep inside the optimiser) never surfaces as a
traceback. Keys absent from the composed config are skipped (each data set has its own keys).
Keys with a few named choices are checked here too. The inference blocks are checked by :class:`~denoise.ops.inference.InferenceSettings` itself,
through the method eval.py and predict.py use to read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from denoise.data.submission import SUBMISSIONS
from denoise.errors import ConfigError
from denoise.lit.base import VAL_PROTOCOLS
from denoise.lit.blind_spot import TRAIN_PD_KEEPS
from denoise.metrics.scoring import SCORING_PROTOCOLS
from denoise.ops.inference import InferenceSettings
from denoise.ops.pd import LAYOUTS


@dataclass(frozen=True)
class Rule:
    expected: str  # what the key allows, as the error line says it
    accepts: Callable[[Any], bool]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int, maximum: int | None = None) -> Rule:
    if maximum is None:
        return Rule(f"an integer >= {minimum}", lambda v: _is_int(v) and v >= minimum)
    return Rule(f"an integer in [{minimum}, {maximum}]", lambda v: _is_int(v) and minimum <= v <= maximum)


def positive_number() -> Rule:
    return Rule("a number > 0", lambda v: _is_number(v) and v > 0)


def non_negative_number() -> Rule:
    return Rule("a number >= 0", lambda v: _is_number(v) and v >= 0)


def fraction(low_open: bool = False, high_open: bool = False) -> Rule:
    low, high = "(" if low_open else "[", ")" if high_open else "]"

    def accepts(v: Any) -> bool:
        return _is_number(v) and (v > 0 if low_open else v >= 0) and (v < 1 if high_open else v <= 1)

    return Rule(f"a number in {low}0, 1{high}", accepts)


def one_of(*choices: str) -> Rule:
    return Rule(f"one of {', '.join(choices)}", lambda v: isinstance(v, str) and v in choices)


def optional(rule: Rule) -> Rule:
    return Rule(f"null or {rule.expected}", lambda v: v is None or rule.accepts(v))


def either(first: Rule, second: Rule) -> Rule:
    return Rule(f"{first.expected} or {second.expected}", lambda v: first.accepts(v) or second.accepts(v))


def list_of(rule: Rule, length: int | None = None) -> Rule:
    def accepts(v: Any) -> bool:
        return isinstance(v, (list, tuple)) and (length is None or len(v) == length) and all(map(rule.accepts, v))

    count = f"{length} " if length is not None else ""
    return Rule(f"a list of {count}values, each {rule.expected}", accepts)


def devices() -> Rule:
    return Rule(
        "an integer >= 1, -1 (all), auto or a list of device indices",
        lambda v: (_is_int(v) and (v >= 1 or v == -1)) or v == "auto" or isinstance(v, (list, tuple, str)),
    )


SEED = integer(0, 2**32 - 1)  # what numpy's generator accepts

# Lightning takes an integer (every n steps) or a fraction of an epoch.
EVERY_N_STEPS_OR_FRACTION = either(integer(1), fraction(low_open=True))

TRAIN_RULES: dict[str, Rule] = {
    "seed": optional(SEED),
    # -1: no step limit (Lightning's convention), for a run that ends at trainer.max_time.
    "trainer.max_steps": either(integer(1), Rule("-1", lambda v: _is_int(v) and v == -1)),
    "trainer.val_check_interval": EVERY_N_STEPS_OR_FRACTION,
    "trainer.log_every_n_steps": integer(1),
    "trainer.limit_val_batches": either(integer(0), fraction()),
    "trainer.limit_train_batches": either(integer(1), fraction(low_open=True)),
    "trainer.accumulate_grad_batches": integer(1),
    "trainer.gradient_clip_val": optional(non_negative_number()),
    "trainer.devices": devices(),
    "trainer.num_nodes": integer(1),
    "model.optimizer.lr": positive_number(),
    "model.optimizer.weight_decay": non_negative_number(),
    "model.optimizer.betas": list_of(fraction(high_open=True), length=2),
    "model.optimizer.eps": positive_number(),
    "model.scheduler.milestones": list_of(fraction()),
    "model.scheduler.gamma": positive_number(),
    "model.train_pd.factor": integer(1),
    "model.train_pd.pad": integer(0),
    "model.train_pd.layout": one_of(*LAYOUTS),
    "model.train_pd.keep": one_of(*TRAIN_PD_KEEPS),
    "model.val_protocol": one_of(*VAL_PROTOCOLS),
    "model.data_scale": positive_number(),
    "model.net.in_channels": integer(1),
    "model.student.in_channels": integer(1),
    # The size keys the shipped networks share; keys of one network only reach its constructor as set.
    **{f"model.{net}.{key}": rule for net in ("net", "student") for key, rule in {
        "dim": integer(1),
        "channels": integer(1),
        "num_blocks": either(integer(1), list_of(integer(1))),
        "num_refinement_blocks": integer(0),
        "heads": list_of(integer(1)),
        "channel_heads": list_of(integer(1)),
        "window_heads": list_of(integer(1)),
        "head_dim": integer(1),
        "window": integer(1),
        "overlap": fraction(high_open=True),
        "ffn_expansion": positive_number(),
        "levels": integer(1),
        "negative_slope": non_negative_number(),
    }.items()},
    "data.crop_size": integer(1),
    "data.batch_size": integer(1),
    "data.epoch_length": integer(1),
    "data.num_workers": integer(0),
    "data.crops_per_image": integer(1),
    "data.val_size": integer(1),
    "data.upscale": integer(1),
    "data.images": optional(integer(1)),
    "data.val_crop": optional(integer(1)),
    "data.seed": SEED,
    "callbacks.ema.decay": fraction(),
    "callbacks.ema.update_every_n_steps": integer(1),
    "callbacks.ema.update_starting_at_step": optional(integer(0)),
}
TRAIN_INFERENCE_BLOCKS = ("model.inference", "model.teacher_inference", "model.benchmark_inference")

EVAL_RULES: dict[str, Rule] = {
    # eval.py builds the same datamodules: their keys follow the same rules.
    **{key: rule for key, rule in TRAIN_RULES.items() if key.startswith("data.")},
    "data.blocks": optional(integer(0)),
    "limit": optional(integer(1)),
    "panels": optional(integer(0)),
    "protocol": one_of("auto", *SCORING_PROTOCOLS),
    # false / null: no submission, as none.
    "submission": Rule(
        f"one of {', '.join(SUBMISSIONS)} (or false)",
        lambda v: v is False or v is None or (isinstance(v, str) and v in SUBMISSIONS),
    ),
}
PREDICT_RULES: dict[str, Rule] = {}
# eval.py and predict.py: null keys keep the checkpoint's own value.
OVERRIDE_INFERENCE_BLOCKS = ("inference",)

_ABSENT = object()


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default=_ABSENT)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def rule_problems(cfg: DictConfig, rules: Mapping[str, Rule]) -> list[str]:
    problems = []
    for key, rule in rules.items():
        value = _value(cfg, key)
        if value is not _ABSENT and not rule.accepts(value):
            problems.append(f"{key}={value!r}: expected {rule.expected}")
    return problems


def inference_problems(cfg: DictConfig, block: str) -> list[str]:
    """The problems :meth:`~denoise.ops.inference.InferenceSettings.overridden` finds in ``block``
    (its non-null keys), named with the block. The base has no tiling, so that a tile overlap given
    alone is checked later against the tile size it will be used with (a checkpoint's own)."""
    values = _value(cfg, block)
    if values is _ABSENT or values is None:
        return []
    if not isinstance(values, dict):
        return [f"{block}={values!r}: expected a mapping of inference settings"]
    try:
        InferenceSettings(tile_size=None).overridden(values)
    except ConfigError as error:
        return [f"{block}: {str(error).removeprefix('inference settings: ')}"]
    return []


def check_config(cfg: DictConfig, rules: Mapping[str, Rule], inference_blocks: tuple[str, ...] = ()) -> None:
    """ConfigError listing every bad value of ``cfg`` in one line; nothing when all are usable."""
    problems = rule_problems(cfg, rules)
    for block in inference_blocks:
        problems += inference_problems(cfg, block)
    if problems:
        raise ConfigError("; ".join(problems))


def check_train_config(cfg: DictConfig) -> None:
    check_config(cfg, TRAIN_RULES, TRAIN_INFERENCE_BLOCKS)


def check_eval_config(cfg: DictConfig) -> None:
    check_config(cfg, EVAL_RULES, OVERRIDE_INFERENCE_BLOCKS)


def check_predict_config(cfg: DictConfig) -> None:
    check_config(cfg, PREDICT_RULES, OVERRIDE_INFERENCE_BLOCKS)
