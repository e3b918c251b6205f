"""The precision a machine trains and denoises in: ``auto`` is bf16 where the device runs it natively.

``trainer.precision=auto`` becomes ``bf16-mixed`` (autocast; weights, optimiser and loss stay
float32) and ``inference.precision=auto`` becomes ``bf16`` (autocast around every network pass) on

- a CPU with bf16 instructions: the ``avx512_bf16`` or ``amx_bf16`` flag of ``/proc/cpuinfo``
  (on other systems, torch's own check for ``avx512_bf16``, which every AMX CPU has as well);
- a CUDA GPU with bf16 units (compute capability 8.0 or higher), not one that emulates bf16;

and float32 (``32-true`` / ``32``) elsewhere. Without native bf16 the CPU converts every operand
and computes in float32 after all: bf16 autocast was measured slower than float32 there, while
with it the photos teacher's training step took 0.71x its float32 time (AMD EPYC, avx512_bf16).
``torch.backends.cpu.get_cpu_capability()`` cannot decide this: it names the vector width
(``AVX512``), which CPUs with and without bf16 instructions share. Explicit values (``32-true``,
``bf16-mixed``, ``32``, ``bf16``, ...) are the override and are kept as they are.
"""

from __future__ import annotations

import functools
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from denoise.errors import ConfigError
from denoise.ops.settings import InferenceSettings

log = logging.getLogger(__name__)

CPU_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = Path("/proc/cpuinfo")
# Lightning's precision values (lightning.fabric.connector): explicit choices pass through to it.
LIGHTNING_PRECISIONS = (
    "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true",
    "transformer-engine", "transformer-engine-float16", "32", "16", "64", "bf16",
)
AUTO = "auto"


@dataclass(frozen=True)
class Bf16Support:
    """Whether a device runs bf16 natively, and the evidence in a few words for the log line."""

    native: bool
    reason: str


def cpu_bf16_flags(cpuinfo: Path = CPUINFO) -> tuple[str, ...] | None:
    """The flags of :data:`CPU_FLAGS` that ``cpuinfo`` (Linux's ``/proc/cpuinfo``) lists; None
    when the file cannot be read (not Linux)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return tuple(flag for flag in CPU_FLAGS if flag in flags)


def cpu_bf16(cpuinfo: Path = CPUINFO) -> Bf16Support:
    """Native bf16 on this CPU, from its flags (see the module docstring)."""
    flags = cpu_bf16_flags(cpuinfo)
    source = ""
    if flags is None:  # macOS, Windows: torch's cpuinfo library reads the same instruction set
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        flags = ("avx512_bf16",) if check is not None and check() else ()
        source = f", as torch reports it on {sys.platform}"
    if flags:
        return Bf16Support(True, f"this CPU runs bf16 natively: {', '.join(flags)}{source}")
    return Bf16Support(False, f"this CPU has no native bf16 (no {' or '.join(CPU_FLAGS)}{source}), "
                              f"where bf16 is slower than float32")


def cuda_bf16() -> Bf16Support:
    """Native bf16 on the current CUDA GPU: bf16 units, not the emulation older GPUs accept."""
    name = torch.cuda.get_device_name()
    major, minor = torch.cuda.get_device_capability()
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before the emulation flag: it reported units only
        native = torch.cuda.is_bf16_supported()
    if native:
        return Bf16Support(True, f"this GPU ({name}, compute capability {major}.{minor}) runs bf16 natively")
    return Bf16Support(False, f"this GPU ({name}, compute capability {major}.{minor}) has no bf16 units")


@functools.cache
def bf16_support(device_type: str) -> Bf16Support:
    """Native bf16 on a device of ``device_type`` (``cpu``, ``cuda``, ``mps``, ...) of this machine,
    found once per process: every network pass of a protocol asks."""
    if device_type == "cpu":
        return cpu_bf16()
    if device_type == "cuda":
        return cuda_bf16() if torch.cuda.is_available() else Bf16Support(False, "no CUDA GPU is available")
    return Bf16Support(False, f"bf16 is chosen only on CPUs and CUDA GPUs that run it natively, not on {device_type}")


def accelerator_device_type(accelerator) -> str:
    """The device type Lightning's ``trainer.accelerator`` trains on (``auto`` as Lightning picks it)."""
    name = str(accelerator).lower() if isinstance(accelerator, str) else type(accelerator).__name__.lower()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if mps:
            return "mps"
        return "cpu" if name == "auto" else "cuda"
    return name.removesuffix("accelerator")  # cpu, cuda, mps, tpu, or an Accelerator object's class


def training_precision(value, accelerator) -> tuple[str | int, str]:
    """(the Lightning precision to train in, why) for ``trainer.precision=value`` on ``accelerator``."""
    if isinstance(value, str) and value.lower() == AUTO:
        support = bf16_support(accelerator_device_type(accelerator))
        if support.native:
            return "bf16-mixed", f"auto; {support.reason}; trainer.precision=32-true for float32"
        return "32-true", f"auto; {support.reason}"
    if value in LIGHTNING_PRECISIONS or (isinstance(value, int) and str(value) in LIGHTNING_PRECISIONS):
        return value, "as trainer.precision sets it"
    raise ConfigError(f"trainer.precision={value}: expected {AUTO}, {', '.join(LIGHTNING_PRECISIONS)}")


def inference_precision(value: str, device_type: str) -> tuple[str, str | None]:
    """(``32`` or ``bf16``, why; None when ``value`` is not auto) for inference on ``device_type``."""
    if value != AUTO:
        return value, None
    support = bf16_support(device_type)
    if support.native:
        return "bf16", f"auto; {support.reason}; inference.precision=32 for float32"
    return "32", f"auto; {support.reason}"


def settings_for_device(settings: InferenceSettings, device: torch.device | str) -> InferenceSettings:
    """``settings`` with ``precision: auto`` made concrete for ``device`` (logged once, with why):
    what ran is what eval.py's results and predict.py's log line say."""
    precision, reason = inference_precision(settings.precision, torch.device(device).type)
    if reason is None:
        return settings
    log.info(f"Inference precision: {precision} ({reason})")
    return replace(settings, precision=precision)
