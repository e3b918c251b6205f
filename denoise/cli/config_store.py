"""The config nodes Hydra composes from the code's own defaults: each default is written once, in
the code that uses it, and the YAML files under ``configs/`` hold recipes (choices and overrides).

Importing this module registers the nodes in Hydra's ConfigStore; every entry point and every
script or test that composes ``configs/`` imports it first.

| node | built from |
|---|---|
| ``inference/default`` | :class:`~denoise.ops.settings.InferenceSettings`' defaults |
| ``inference/checkpoint`` | its keys, each null: eval.py and predict.py keep the checkpoint's value |
| ``inference/distill_teacher`` | :data:`~denoise.lit.distill.TEACHER_INFERENCE` |
| ``inference/distill_student`` | the defaults of the settings a student's single pass reads |
| ``model/optimizer/adamw`` | :data:`~denoise.lit.base.OPTIMIZER` |
| ``model/scheduler/default`` | :class:`~denoise.lit.schedule.ScheduleSettings`' defaults |
| ``model/train_pd/default`` | :class:`~denoise.lit.blind_spot.TrainPD`'s defaults |
| ``model/signature/blind_spot``, ``.../distill`` | the module's ``_target_`` and its constructor's defaults |

The nodes are plain mappings of the defaults rather than typed dataclass schemas: a bad value
(``inference.r3_passes=eight``) then reaches the class's own check and stops the run with its one
line, where a typed schema would stop Hydra's composition with a multi-line error. Unknown keys
are still refused: Hydra composes in struct mode.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from hydra.core.config_store import ConfigStore

from denoise.lit.base import OPTIMIZER
from denoise.lit.blind_spot import BlindSpotModule, TrainPD
from denoise.lit.distill import STUDENT_INFERENCE_KEYS, TEACHER_INFERENCE, DistillationModule
from denoise.lit.schedule import ScheduleSettings
from denoise.ops.settings import InferenceSettings


def config_values(value: Any) -> Any:
    """``value`` as a config holds it: tuples as lists, at every depth."""
    if isinstance(value, dict):
        return {key: config_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_values(item) for item in value]
    return value


def defaults_of(settings_class: type) -> dict[str, Any]:
    return config_values(dataclasses.asdict(settings_class()))


def signature_node(module: type) -> dict[str, Any]:
    """The module's ``_target_`` and its constructor's parameters in order, each with its default;
    a required one (the network, the optimiser) is ``???`` until the model's config chooses it.
    The module builds its network and optimiser itself (``_recursive_: false``), so that a
    checkpoint's hyper-parameters alone rebuild it."""
    parameters = list(inspect.signature(module.__init__).parameters.values())[1:]  # not self
    defaults = {p.name: "???" if p.default is inspect.Parameter.empty else p.default for p in parameters}
    return {"_target_": public_path(module), "_recursive_": False, **config_values(defaults)}


def public_path(cls: type) -> str:
    """The shortest import path of ``cls`` (``denoise.lit.BlindSpotModule``), as configs name it."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        package = ".".join(parts[:end])
        if getattr(importlib.import_module(package), cls.__qualname__, None) is cls:
            return f"{package}.{cls.__qualname__}"
    raise AssertionError(f"{cls} is not importable from its own module")


def nodes() -> dict[tuple[str, str], dict[str, Any]]:
    """(group, name) -> node."""
    inference = defaults_of(InferenceSettings)
    return {
        ("inference", "default"): inference,
        ("inference", "checkpoint"): dict.fromkeys(inference),
        ("inference", "distill_teacher"): config_values(TEACHER_INFERENCE),
        ("inference", "distill_student"): {key: inference[key] for key in STUDENT_INFERENCE_KEYS},
        ("model/optimizer", "adamw"): config_values(OPTIMIZER),
        ("model/scheduler", "default"): defaults_of(ScheduleSettings),
        ("model/train_pd", "default"): defaults_of(TrainPD),
        ("model/signature", "blind_spot"): signature_node(BlindSpotModule),
        ("model/signature", "distill"): signature_node(DistillationModule),
    }


def register() -> None:
    store = ConfigStore.instance()
    for (group, name), node in nodes().items():
        store.store(group=group, name=name, node=node)


register()
