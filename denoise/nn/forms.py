"""The two forms of a blind-spot network and of every block in it.

``phase``: the body runs on the phase sub-images stacked in the batch (the fast default);
``literal``: the paper's full-resolution network (dilated convs, masked windows). Both hold the
same parameters and compute the same function.
"""

from __future__ import annotations

from denoise.errors import ConfigError

FORMS = ("phase", "literal")


def check_form(form: str, owner: str = "") -> str:
    """``form`` if it is one of :data:`FORMS`; a one-line ConfigError naming ``owner`` otherwise."""
    if form not in FORMS:
        raise ConfigError(f"{owner}{': ' if owner else ''}form must be one of {FORMS}, got {form!r}")
    return form
