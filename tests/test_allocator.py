"""The entry points keep freed memory in the process (glibc's malloc thresholds raised)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = (
    "import sys; from denoise.cli.allocator import keep_freed_memory; "
    "sys.exit(0 if keep_freed_memory() else 3)"
)


def run_probe(env: dict[str, str]) -> int:
    return subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, check=False).returncode


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux only")
def test_thresholds_are_raised_unless_the_user_set_malloc_variables():
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    assert run_probe(env) == 0
    assert run_probe({**env, "MALLOC_ARENA_MAX": "2"}) == 3  # the user's own settings stand


def test_every_entry_point_sets_it_up_through_the_task_wrapper(monkeypatch):
    from denoise.cli import errors

    calls = []
    monkeypatch.setattr(errors, "keep_freed_memory", lambda: calls.append(True))
    assert errors.task_wrapper(lambda cfg: cfg + 1)(1) == 2
    assert calls == [True]
