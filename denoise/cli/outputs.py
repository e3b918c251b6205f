"""Where each denoised file goes, decided and checked before any training or denoising.

``predict.py`` writes ``<output>/<the file's path relative to the input folder>``, and ``photos.py``
writes through it. Both plan the outputs first with :func:`plan_outputs`; ``cubes.py``, whose
inputs may come from several folders, writes ``<output>/<name>`` and runs the same
:func:`check_targets`: a run whose results
cannot be written stops in one line before it spends minutes training or denoising, instead of
skipping every file at the end.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from denoise.errors import ConfigError

SHOWN_NAMES = 3  # an error names this many files, then "and N more"


def plan_outputs(base: Path, files: list[Path], output: str | None, recursive: bool,
                 key: str = "output") -> dict[Path, Path]:
    """{input file: its output file} for ``files`` under ``base``, after checking that every output
    can be written: not over an input, not fed back into a recursive input, one output per input,
    and a folder that can be created and written to (it is created). ``key`` names the setting in
    errors (``output`` for predict.py, ``photos.output`` for photos.py)."""
    folder = output_folder(output, key)
    check_no_feedback(base, folder, recursive, key, output)
    targets = {path: folder / path.relative_to(base) for path in files}
    check_targets(targets, folder, key, output, base)
    return targets


def check_targets(targets: dict[Path, Path], folder: Path, key: str, output: str, base: Path | None = None) -> None:
    """The checks every planned {input: output} mapping passes before any work: no output over an
    input, one output per input, no folder in the way, and ``folder`` created and writable.
    ``base``: the input folder, to name inputs relative to it in errors."""
    check_inputs_kept(targets, key, output)
    check_unique(targets, base, key, output)
    check_no_folder_in_the_way(targets, key, output)
    check_writable(folder, key, output)


def output_folder(output: str | None, key: str = "output") -> Path:
    if not output:
        raise ConfigError(f"{key} is not set: pass {key}=<a folder for the denoised files>")
    path = Path(str(output)).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key}={output} is a file; expected a folder")
    return path


def check_no_feedback(base: Path, folder: Path, recursive: bool, key: str, output: str) -> None:
    """With recursive=true, an output folder inside the input would be read back as input by the
    next run (and denoised again, one level deeper each time)."""
    base, folder = base.resolve(), folder.resolve()
    if recursive and (folder == base or base in folder.parents):
        raise ConfigError(
            f"{key}={output} is inside the input folder {base} and recursive=true: the next run would "
            f"denoise the denoised files again; choose an output folder outside the input"
        )


def check_inputs_kept(targets: dict[Path, Path], key: str, output: str) -> None:
    """No output may be an input file, whatever the spelling of the path (symlinks, ``..``, hard links)."""
    inputs = {path.resolve(): path for path in targets}
    overwritten = [path for path, target in targets.items()
                   if target.resolve() in inputs or _same_file(target, path)]
    if overwritten:
        raise ConfigError(
            f"{key}={output}: the denoised files would overwrite the input files {names(overwritten)}; "
            f"choose another output folder"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_unique(targets: dict[Path, Path], base: Path | None, key: str, output: str) -> None:
    """One output per input. Names are compared without case: on a case-insensitive file system
    (macOS, Windows, most USB drives) ``a.png`` and ``a.PNG`` are one file, and the second output
    would silently replace the first."""
    seen: dict[str, Path] = {}
    for path, target in targets.items():
        name = str(target).casefold()
        if name in seen:
            first, second = (p.relative_to(base) if base else p for p in (seen[name], path))
            raise ConfigError(
                f"{key}={output}: {first} and {second} would be written to one file (their names differ "
                f"at most in case); rename one of them"
            )
        seen[name] = path


def check_no_folder_in_the_way(targets: dict[Path, Path], key: str, output: str) -> None:
    blocked = [path for path, target in targets.items() if target.is_dir()]
    if blocked:
        raise ConfigError(f"{key}={output}: a folder is in the place of the outputs of {names(blocked)}; "
                          f"move it or choose another output folder")


def check_writable(folder: Path, key: str, output: str) -> None:
    """Create the folder and a temporary file in it (removed at once): permissions, a read-only
    disk or a file in the way show now, not after the training."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise ConfigError(
            f"{key}={output}: cannot write there ({error.strerror or error}); choose a folder you can write to"
        ) from None


def names(paths: list[Path]) -> str:
    shown = ", ".join(path.name for path in paths[:SHOWN_NAMES])
    return shown + (f" and {len(paths) - SHOWN_NAMES} more" if len(paths) > SHOWN_NAMES else "")
