"""The two kernels of a block, chosen when a network is built, independently of its form.

``reference``: the block as the paper writes it, in plain torch ops, as the official code runs.
``fast``: the same function with the same parameters in fewer passes over memory: a subclass of
the reference block that overrides the one method computing it (``FastLayerNorm2d``,
``FastChannelAttention``, ...). ``auto`` picks ``fast`` for the phase form, the fast default,
and ``reference`` for the literal form, the network a reader matches line by line with the paper
and the official code.
"""

from __future__ import annotations

from typing import TypeVar

from denoise.errors import ConfigError

T = TypeVar("T")
KERNELS = ("reference", "fast")


def resolve_kernels(kernels: str, form: str, owner: str = "") -> str:
    """``kernels`` checked, ``auto`` resolved for ``form``; a one-line ConfigError naming ``owner`` if unknown."""
    if kernels == "auto":
        return "fast" if form == "phase" else "reference"
    if kernels not in KERNELS:
        raise ConfigError(f"{owner}{': ' if owner else ''}kernels must be one of {KERNELS} or 'auto', got {kernels!r}")
    return kernels


def pick(kernels: str, reference: type[T], fast: type[T]) -> type[T]:
    """The class of a layer with both kernels that the resolved ``kernels`` asks for."""
    return fast if kernels == "fast" else reference
