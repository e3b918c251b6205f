"""Every value a user sets, checked before any work starts, by the rules of the code that reads it.

A bad value stops the run with one line naming the key, the value and what is allowed, before data
are read or a model is built: a value the config accepts but the code cannot use (``factor=0``
divides by zero, a negative learning rate is refused deep inside the optimiser) never surfaces as a
traceback. The check walks the composed config: each node with a ``_target_`` is checked by the
rules its class writes on its own parameters, or on the fields of the dataclass its keyword options
go to (``TBSNOptions``; :mod:`denoise.rules`), each block of settings by the class that reads it
(``InferenceSettings``, ``ScheduleSettings``, ...). No rule is keyed by a config path: the path in
the error line is where the node sits, so a recipe that moves a network or renames a data set keeps
every check.

Third-party classes, which carry no rules in their own code (Lightning's ``Trainer``, torch's
optimisers), get them from a dataclass here, :data:`EXTERNAL`; importing this module fails if such
a dataclass names a parameter its class no longer takes, so these rules cannot detach silently
either. The keys the entry points read themselves (``seed``, eval.py's ``limit``) are the fields of
:class:`TrainEntry`, :class:`EvalEntry` and :class:`PredictEntry`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from hydra.utils import get_object
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from omegaconf import DictConfig, OmegaConf

import denoise.cli.config_store  # noqa: F401  (the nodes the checked configs are composed from)
from denoise.data.submission import SUBMISSIONS
from denoise.lit.base import OptimizerArguments
from denoise.metrics.scoring import SCORING_PROTOCOLS
from denoise.ops.settings import InferenceSettings
from denoise.rules import (
    SEED,
    Rule,
    blocks_of,
    either,
    exactly,
    fraction,
    integer,
    non_negative_number,
    one_of,
    optional,
    raise_problems,
    rules_of,
    setting_names,
)

# Lightning takes an integer (every n steps) or a fraction of an epoch.
EVERY_N_STEPS_OR_FRACTION = either(integer(1), fraction(low_open=True))
# Lightning's forms of a time limit: "DD:HH:MM:SS" or a mapping of days / hours / minutes / seconds.
MAX_TIME = Rule(
    'null, "DD:HH:MM:SS" (e.g. "00:00:10:00") or a mapping such as {minutes: 10}',
    lambda v: v is None
    or (isinstance(v, str) and re.fullmatch(r"\d+:\d{1,2}:\d{1,2}:\d{1,2}", v) is not None)
    or (isinstance(v, Mapping) and len(v) > 0
        and all(k in ("days", "hours", "minutes", "seconds") and non_negative_number().accepts(t) for k, t in v.items())),
)
DEVICES = Rule(
    "an integer >= 1, -1 (all), auto or a list of device indices",
    lambda v: either(integer(1), exactly(-1)).accepts(v) or isinstance(v, (list, tuple, str)),
)

# false / null: no submission, as none.
SUBMISSION = Rule(
    f"one of {', '.join(SUBMISSIONS)} (or false)",
    lambda v: v is False or v is None or (isinstance(v, str) and v in SUBMISSIONS),
)


@dataclass(frozen=True)
class TrainerArguments:
    """``lightning.pytorch.Trainer``'s arguments that recipes set."""

    # -1: no step limit (Lightning's convention), for a run that ends at trainer.max_time.
    max_steps: Annotated[int, either(integer(1), exactly(-1))]
    val_check_interval: Annotated[float, EVERY_N_STEPS_OR_FRACTION]
    log_every_n_steps: Annotated[int, integer(1)]
    max_time: Annotated[Any, MAX_TIME]
    # null: all batches (Lightning's default)
    limit_val_batches: Annotated[float | None, optional(either(integer(0), fraction()))]
    limit_train_batches: Annotated[float | None, optional(either(integer(1), fraction(low_open=True)))]
    accumulate_grad_batches: Annotated[int, integer(1)]
    gradient_clip_val: Annotated[float | None, optional(non_negative_number())]
    devices: Annotated[Any, DEVICES]
    num_nodes: Annotated[int, integer(1)]


@dataclass(frozen=True)
class EMAArguments:
    """``lightning.pytorch.callbacks.EMAWeightAveraging`` (callbacks=ema)."""

    decay: Annotated[float, fraction()]
    update_every_n_steps: Annotated[int, integer(1)]
    update_starting_at_step: Annotated[int | None, optional(integer(0))]


# class -> (the dataclass of its rules, the class whose parameters or fields those rules check):
# third-party classes only, whose code cannot carry this project's rules.
EXTERNAL: dict[type, tuple[type, type]] = {
    Trainer: (TrainerArguments, Trainer),
    EMAWeightAveraging: (EMAArguments, EMAWeightAveraging),
    # Any torch optimiser: the arguments they share, named as AdamW (the default) names them.
    torch.optim.Optimizer: (OptimizerArguments, torch.optim.AdamW),
}


@dataclass(frozen=True)
class TrainEntry:
    """The keys of configs/train.yaml that train.py reads itself."""

    seed: Annotated[int | None, optional(SEED)]


@dataclass(frozen=True)
class PredictEntry:
    """The keys of configs/predict.yaml that predict.py checks; null inference keys keep the checkpoint's."""

    inference: Annotated[dict | None, InferenceSettings]


@dataclass(frozen=True)
class EvalEntry(PredictEntry):
    """The keys of configs/eval.yaml that eval.py reads itself."""

    limit: Annotated[int | None, optional(integer(1))]
    panels: Annotated[int | None, optional(integer(0))]
    protocol: Annotated[str, one_of("auto", *SCORING_PROTOCOLS)]
    submission: Annotated[Any, SUBMISSION]


def stale_external_rules(external: Mapping[type, tuple[type, type]]) -> list[str]:
    """The rules of ``external`` that name a parameter or field their class does not have."""
    return [
        f"{fields.__name__}.{name} (not a setting of {checked.__name__})"
        for fields, checked in external.values()
        for name in sorted(setting_names(fields) - setting_names(checked))
    ]


if stale_external_rules(EXTERNAL):  # a renamed parameter: its rule would check nothing
    raise RuntimeError(f"rules of settings that do not exist: {', '.join(stale_external_rules(EXTERNAL))}")


# --- the walk -----------------------------------------------------------------------------------
def owner_settings(owner: Any, read: Callable[[Any], dict]) -> dict:
    """What ``read`` (:func:`rules_of` or :func:`blocks_of`) finds on ``owner`` and on the
    dataclasses :data:`EXTERNAL` gives its classes."""
    found = dict(read(owner)) if owner is not None else {}
    for cls in getattr(owner, "__mro__", ()):
        if cls in EXTERNAL:
            found.update(read(EXTERNAL[cls][0]))
    return found


def target_of(values: Mapping) -> Any:
    """The class (or function) a node's ``_target_`` names; None when it has none or it does not
    import (instantiating the node reports that)."""
    target = values.get("_target_")
    if not isinstance(target, str):
        return None
    try:
        return get_object(target)
    except (ImportError, AttributeError, ValueError):
        return None


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def checks(values: Mapping, owner: Any, prefix: str = "") -> Iterator[tuple[str, Any, Rule | type]]:
    """(path, value, what checks it) for every checked key of a config node read by ``owner`` and of
    every node inside it: a rule of the key's owner, or a settings class that checks its block itself."""
    rules, blocks = owner_settings(owner, rules_of), owner_settings(owner, blocks_of)
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key in rules:
            yield path, value, rules[key]
        if key in blocks and hasattr(blocks[key], "block_problems"):
            yield path, value, blocks[key]
        elif key in blocks and isinstance(value, Mapping):
            yield from checks(value, blocks[key], f"{path}.")
        elif key in blocks and value is not None:
            yield path, value, Rule(f"a mapping of {blocks[key].__name__} settings", is_mapping)
        elif isinstance(value, Mapping):
            yield from checks(value, target_of(value), f"{path}.")


def node_problems(values: Mapping, owner: Any, prefix: str = "") -> list[str]:
    """The problems of a config node read by ``owner`` and of every node inside it."""
    found = []
    for path, value, check in checks(values, owner, prefix):
        if isinstance(check, Rule):
            found.append(check.problem(path, value))
        else:
            found += check.block_problems(value, path)
    return [problem for problem in found if problem is not None]


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain values, without Hydra's own section."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }


def check_config(cfg: DictConfig, entry: type) -> None:
    """ConfigError listing every bad value of ``cfg`` in one line; nothing when all are usable."""
    raise_problems(node_problems(resolved(cfg), entry))


def check_train_config(cfg: DictConfig) -> None:
    check_config(cfg, TrainEntry)


def check_eval_config(cfg: DictConfig) -> None:
    check_config(cfg, EvalEntry)


def check_predict_config(cfg: DictConfig) -> None:
    check_config(cfg, PredictEntry)
