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
| ``<group>/signature/<name>`` | the ``_target_`` that :data:`TARGETS` names and its parameters' defaults |

The groups that build objects (``data``, ``noise``, ``model/net``, ``model/student``,
``callbacks``, ``logger``, ``trainer``) have a ``signature`` subgroup of the same kind: a node per
class, its ``_target_`` and every parameter with the code's default, so that a recipe chooses one
(``signature@_here_: sidd``) and writes only what it changes, and ``key=value`` on the command line
reaches every parameter without ``+``. A parameter is documented where it is defined. The network
configs name their group absolutely (``/model/net/signature@_here_: tbsn``), so that they also
compose on their own, from ``configs/model/net`` (the benchmark scripts do).

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
from hydra.utils import get_object

from denoise.lit.base import OPTIMIZER
from denoise.lit.blind_spot import BlindSpotModule, TrainPD
from denoise.lit.distill import STUDENT_INFERENCE_KEYS, TEACHER_INFERENCE, DistillationModule
from denoise.lit.schedule import ScheduleSettings
from denoise.ops.settings import InferenceSettings
from denoise.rules import keyword_options


def config_values(value: Any) -> Any:
    """``value`` as a config holds it: tuples as lists, at every depth."""
    if isinstance(value, dict):
        return {key: config_values(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [config_values(item) for item in value]
    return value


def defaults_of(settings_class: type) -> dict[str, Any]:
    return config_values(dataclasses.asdict(settings_class()))


def parameters_of(function: Any, forwards_to: Any = None) -> dict[str, Any]:
    """The named parameters of ``function`` (a class: its constructor's) in order, each with its
    default; a required one is ``???`` until a config sets it. ``*args`` and ``**kwargs`` are not
    keys; the parameters of where ``**kwargs`` go are, after the function's own: ``forwards_to``,
    else the dataclass an annotated ``**options`` names (TBSN's ``TBSNOptions``), else, for a
    class, its base class's constructor (``super().__init__(**settings)``)."""
    is_class = isinstance(function, type)
    init = function.__init__ if is_class else function
    parameters = list(inspect.signature(init).parameters.values())[1 if is_class else 0 :]  # not self
    own = {p.name: "???" if p.default is inspect.Parameter.empty else p.default
           for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    if forwards_to is None and any(p.kind is p.VAR_KEYWORD for p in parameters):
        options = keyword_options(init)
        if options is not None:
            forwards_to = options[1]
        elif is_class:
            defining = next(cls for cls in function.__mro__ if "__init__" in vars(cls))
            forwards_to = defining.__mro__[1] if defining is not object else None
    forwarded = parameters_of(forwards_to) if forwards_to not in (None, object) else {}
    return config_values({**own, **{name: value for name, value in forwarded.items() if name not in own}})


def target_node(path: str, forwards_to: str | None = None) -> dict[str, Any]:
    """The ``_target_`` ``path`` (as the configs name it) and its parameters with their defaults."""
    return {"_target_": path, **parameters_of(get_object(path), forwards_to and get_object(forwards_to))}


def signature_node(module: type) -> dict[str, Any]:
    """The module's ``_target_`` and its constructor's parameters in order, each with its default;
    a required one (the network, the optimiser) is ``???`` until the model's config chooses it.
    The module builds its network and optimiser itself (``_recursive_: false``), so that a
    checkpoint's hyper-parameters alone rebuild it."""
    return {"_target_": public_path(module), "_recursive_": False, **parameters_of(module)}


def public_path(cls: type) -> str:
    """The shortest import path of ``cls`` (``denoise.lit.BlindSpotModule``), as configs name it."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        package = ".".join(parts[:end])
        if getattr(importlib.import_module(package), cls.__qualname__, None) is cls:
            return f"{package}.{cls.__qualname__}"
    raise AssertionError(f"{cls} is not importable from its own module")


# (group, name) -> the ``_target_`` of a signature node, as the configs name it.
TARGETS: dict[tuple[str, str], str] = {
    ("data/signature", "demo"): "denoise.data.datamodules.demo.DemoDataModule",
    ("data/signature", "dnd"): "denoise.data.datamodules.dnd.DNDDataModule",
    ("data/signature", "folder"): "denoise.data.datamodules.folder.FolderDataModule",
    ("data/signature", "hsi"): "denoise.data.datamodules.hsi.HSIDataModule",
    ("data/signature", "sidd"): "denoise.data.datamodules.sidd.SIDDDataModule",
    ("data/signature", "sidd_bench"): "denoise.data.datamodules.sidd_blocks.SIDDBenchmarkDataModule",
    ("data/signature", "sidd_val"): "denoise.data.datamodules.sidd_blocks.SIDDValidationDataModule",
    ("noise/signature", "none"): "denoise.data.noise.NoNoise",
    ("noise/signature", "gaussian"): "denoise.data.noise.GaussianNoise",
    ("noise/signature", "correlated"): "denoise.data.noise.CorrelatedGaussianNoise",
    ("noise/signature", "poisson_gaussian"): "denoise.data.noise.PoissonGaussianNoise",
    ("noise/signature", "noniid"): "denoise.data.noise.NonIIDGaussianNoise",
    ("noise/signature", "stripe"): "denoise.data.noise.StripeNoise",
    ("noise/signature", "deadline"): "denoise.data.noise.DeadlineNoise",
    ("noise/signature", "impulse"): "denoise.data.noise.ImpulseNoise",
    ("noise/signature", "mixture"): "denoise.data.noise.MixtureNoise",
    ("model/net/signature", "tbsn"): "denoise.nets.TBSN",
    ("model/net/signature", "dbsn"): "denoise.nets.DBSN",
    ("model/net/signature", "bsn_hcanet"): "denoise.nets.BlindSpotHCANet",
    ("model/net/signature", "spectral_bsn"): "denoise.nets.SpectralBlindSpotNet",
    ("model/student/signature", "unet"): "denoise.nets.unet.UNet",
    ("model/student/signature", "hcanet"): "denoise.nets.HCANet",
    ("callbacks/signature", "model_checkpoint"): "lightning.pytorch.callbacks.ModelCheckpoint",
    ("callbacks/signature", "last_checkpoint"): "denoise.lit.LastCheckpoint",
    ("callbacks/signature", "learning_rate_monitor"): "lightning.pytorch.callbacks.LearningRateMonitor",
    ("callbacks/signature", "validation_panels"): "denoise.lit.ValidationPanels",
    ("callbacks/signature", "preemption"): "denoise.lit.Preemption",
    ("callbacks/signature", "progress_bar"): "denoise.lit.progress.StepProgressBar",
    ("callbacks/signature", "divergence_guard"): "denoise.lit.DivergenceGuard",
    ("callbacks/signature", "ema"): "lightning.pytorch.callbacks.EMAWeightAveraging",
    ("logger/signature", "csv"): "denoise.lit.loggers.ResumableCSVLogger",
    ("logger/signature", "tensorboard"): "lightning.pytorch.loggers.TensorBoardLogger",
    ("logger/signature", "wandb"): "denoise.lit.loggers.wandb_logger",
    ("trainer/signature", "lightning"): "lightning.pytorch.Trainer",
}

# Where a ``_target_`` hands its ``**kwargs`` on to: their defaults are written there.
FORWARDS_TO: dict[str, str] = {
    "denoise.lit.loggers.wandb_logger": "lightning.pytorch.loggers.WandbLogger",
}

# Trainer arguments that are not keys of the trainer node: train.py passes callbacks and logger,
# built from the callbacks and logger groups.
TRAINER_LEFT_OUT = ("callbacks", "logger")


def signature_nodes() -> dict[tuple[str, str], dict[str, Any]]:
    found = {key: target_node(path, FORWARDS_TO.get(path)) for key, path in TARGETS.items()}
    trainer = found[("trainer/signature", "lightning")]
    for name in TRAINER_LEFT_OUT:
        del trainer[name]
    return found


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
        **signature_nodes(),
    }


def register() -> None:
    store = ConfigStore.instance()
    for (group, name), node in nodes().items():
        store.store(group=group, name=name, node=node)


register()
