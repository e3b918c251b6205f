"""What a setting allows, attached to the setting itself.

A rule is written on the parameter or dataclass field it checks, as ``Annotated[type, rule]``:

    def __init__(self, crop_size: Annotated[int, integer(1)] = 64): ...

so it cannot detach from it: renaming the parameter renames what the rule checks. (A rule written
inside an annotation calls a function of this module or names a module constant, never a
``lambda``: annotations of a class are evaluated with the class's namespace as globals.) The same rule
serves the check before any work (:mod:`denoise.cli.config_rules` walks the composed config and
asks each ``_target_`` for its rules) and the constructor's own check (:func:`checked`), so a bad
value gives the same one line, ``data.crop_size=0: expected an integer >= 1``, whichever meets it
first. ``Annotated[dict | None, SomeSettings]`` says that a parameter is a block of settings that
``SomeSettings`` reads: the walk checks the block with that class's rules. A constructor that hands
its keyword options on to a dataclass says so with ``**options: Annotated[Any, SomeOptions]``: the
fields of ``SomeOptions``, with their rules, are then the constructor's settings, so a network whose
settings are one dataclass writes each rule once, on the field.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from denoise.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    expected: str  # what the setting allows, as the error line says it
    accepts: Callable[[Any], bool]

    def problem(self, key: str, value: Any) -> str | None:
        return None if self.accepts(value) else f"{key}={value!r}: expected {self.expected}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def integer(minimum: int, maximum: int | None = None) -> Rule:
    if maximum is None:
        return Rule(f"an integer >= {minimum}", lambda v: _is_int(v) and v >= minimum)
    return Rule(f"an integer in [{minimum}, {maximum}]", lambda v: _is_int(v) and minimum <= v <= maximum)


def even_integer(minimum: int) -> Rule:
    return Rule(f"an even integer >= {minimum}", lambda v: _is_int(v) and v >= minimum and v % 2 == 0)


def odd_integer(minimum: int) -> Rule:
    """A kernel size that has a centre pixel."""
    return Rule(f"an odd integer >= {minimum}", lambda v: _is_int(v) and v >= minimum and v % 2 == 1)


def exactly(value: int) -> Rule:
    return Rule(str(value), lambda v: _is_int(v) and v == value)


def positive_number() -> Rule:
    return number_above(0)


def number_above(bound: float) -> Rule:
    return Rule(f"a number > {bound:g}", lambda v: _is_number(v) and v > bound)


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


def list_of(rule: Rule, length: int | None = None, non_empty: bool = False) -> Rule:
    def accepts(v: Any) -> bool:
        # A Sequence, not only a list: Hydra hands constructors OmegaConf's ListConfig.
        if not isinstance(v, Sequence) or isinstance(v, str):
            return False
        sized = (length is None or len(v) == length) and (len(v) > 0 or not non_empty)
        return sized and all(map(rule.accepts, v))

    count = f"{length} " if length is not None else "1 or more " if non_empty else ""
    return Rule(f"a list of {count}values, each {rule.expected}", accepts)


SEED = integer(0, 2**32 - 1)  # what numpy's generator accepts


# --- where the rules are written ---------------------------------------------------------------
def _annotated_metadata(function_or_class: Any) -> dict[str, tuple]:
    """name -> the metadata of its ``Annotated[...]`` annotation, for every annotated name."""
    hints = typing.get_type_hints(function_or_class, include_extras=True)
    return {name: hint.__metadata__ for name, hint in hints.items() if hasattr(hint, "__metadata__")}


@functools.cache
def keyword_options(function: Callable) -> tuple[str, type] | None:
    """(the name of ``**options``, the dataclass that reads them) when ``function`` says so."""
    keywords = [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.VAR_KEYWORD]
    # Only an annotation that says so is evaluated (see annotations_of).
    if not keywords or "Annotated" not in str(getattr(function, "__annotations__", {}).get(keywords[0], "")):
        return None
    options = [kind for kind in _annotated_metadata(function)[keywords[0]] if dataclasses.is_dataclass(kind)]
    return (keywords[0], options[0]) if options else None


def _parameter_metadata(function: Callable) -> dict[str, tuple]:
    """A function's annotated parameters, its ``**options`` replaced by the fields of their dataclass."""
    found = _annotated_metadata(function)
    options = keyword_options(function)
    if options is not None:
        del found[options[0]]
        found.update(annotations_of(options[1]))
    return found


@functools.cache
def annotations_of(owner: Any) -> dict[str, tuple]:
    """The ``Annotated`` metadata of ``owner``'s settings: a dataclass's fields, a class's constructor
    parameters along its bases (a subclass that passes a parameter on to its base keeps the base's
    rule), or a function's parameters."""
    if dataclasses.is_dataclass(owner):
        return _annotated_metadata(owner)
    if not isinstance(owner, type):
        return _parameter_metadata(owner)
    found: dict[str, tuple] = {}
    for cls in reversed(owner.__mro__):
        # Only constructors that write rules are read: others (Lightning's, torch's) may have
        # annotations that do not evaluate outside their own type checking.
        annotations = getattr(vars(cls).get("__init__"), "__annotations__", {})
        if any("Annotated" in str(annotation) for annotation in annotations.values()):
            found.update(_parameter_metadata(cls.__init__))
    return found


def rules_of(owner: Any) -> dict[str, Rule]:
    found = annotations_of(owner).items()
    return {name: rule for name, meta in found for rule in meta if isinstance(rule, Rule)}


def blocks_of(owner: Any) -> dict[str, type]:
    """Parameters that are blocks of settings, and the class that reads each."""
    found = annotations_of(owner).items()
    return {name: kind for name, meta in found for kind in meta if isinstance(kind, type)}


def setting_names(owner: Any) -> set[str]:
    """The names a rule of ``owner`` may check: its fields, or its constructor's parameters."""
    if dataclasses.is_dataclass(owner):
        return {f.name for f in dataclasses.fields(owner)}
    function = owner.__init__ if isinstance(owner, type) else owner
    names = set(inspect.signature(function).parameters) - {"self"}
    options = keyword_options(function)
    return names if options is None else names - {options[0]} | setting_names(options[1])


def problems(rules: Mapping[str, Rule], values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``key=value: expected ...`` for every value in ``values`` that its rule refuses."""
    found = (rules[name].problem(f"{prefix}{name}", values[name]) for name in rules if name in values)
    return [problem for problem in found if problem is not None]


def raise_problems(found: list[str]) -> None:
    if found:
        raise ConfigError("; ".join(found))


def check_fields(settings: Any, prefix: str = "") -> None:
    """For a dataclass's ``__post_init__``: one ConfigError naming every field its rule refuses."""
    values = {field.name: getattr(settings, field.name) for field in dataclasses.fields(settings)}
    raise_problems(problems(rules_of(type(settings)), values, prefix))


def checked(prefix: str | Callable[[Any], str]):
    """Decorates a constructor: its arguments are checked against their ``Annotated`` rules first.
    ``prefix`` is what the error line puts before a parameter's name (``"data."``), or a function
    of the object being built that returns it."""

    def decorate(init: Callable) -> Callable:
        signature = inspect.signature(init)

        @functools.wraps(init)
        def run(self, *args, **kwargs):
            bound = dict(signature.bind(self, *args, **kwargs).arguments)
            options = keyword_options(init)
            if options is not None:  # the keyword options are checked as the fields they are
                bound.update(bound.pop(options[0], {}))
            before = prefix(self) if callable(prefix) else prefix
            raise_problems(problems(rules_of(init), bound, before))
            init(self, *args, **kwargs)

        return run

    return decorate
