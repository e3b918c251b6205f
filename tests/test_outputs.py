"""Output planning (denoise/cli/outputs.py): every output is checked before training or denoising."""

from __future__ import annotations

import os

import pytest

from denoise.cli.outputs import plan_outputs
from denoise.errors import ConfigError


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        (folder / name).write_bytes(b"x")
    return folder


def files(folder, recursive=False):
    return sorted(p for p in folder.glob("**/*" if recursive else "*") if p.is_file())


def test_a_good_plan_mirrors_the_input_and_creates_the_folder(photos, tmp_path):
    out = tmp_path / "new" / "denoised"
    plan = plan_outputs(photos, files(photos, True), str(out), recursive=True)
    assert plan[photos / "sub" / "c.png"] == out / "sub" / "c.png"
    assert out.is_dir() and list(out.iterdir()) == []  # the write test left nothing behind


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlinked_folder"])
def test_outputs_over_the_inputs_are_refused_however_the_folder_is_spelled(photos, tmp_path, spelling):
    if spelling == "same":
        out = str(photos)
    elif spelling == "dotdot":
        out = f"{photos}/sub/../"
    else:
        os.symlink(photos, tmp_path / "link")
        out = str(tmp_path / "link")
    with pytest.raises(ConfigError, match=r"overwrite the input files a\.png, b\.png; choose another"):
        plan_outputs(photos, files(photos), out, recursive=False)


def test_an_output_that_is_a_link_to_the_input_is_refused(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(photos / "b.png", out / "b.png")  # writing out/b.png would write the input
    with pytest.raises(ConfigError, match=r"overwrite the input files b\.png;"):
        plan_outputs(photos, files(photos), str(out), recursive=False)


def test_an_output_folder_inside_a_recursive_input_is_refused(photos):
    with pytest.raises(ConfigError, match=r"output=.*denoised is inside the input folder .* recursive=true"):
        plan_outputs(photos, files(photos, True), str(photos / "denoised"), recursive=True)
    # Not recursive, a sub-folder is never read back.
    assert plan_outputs(photos, files(photos), str(photos / "denoised"), recursive=False)


@pytest.mark.parametrize("names", [("a.png", "a.PNG"), ("sub/x.png", "SUB/x.png")])
def test_two_inputs_must_not_map_to_one_output(tmp_path, names):
    folder = tmp_path / "photos"
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x")
    with pytest.raises(ConfigError, match="would be written to one file"):
        plan_outputs(folder, files(folder, True), str(tmp_path / "out"), recursive=True)


def test_an_output_folder_that_cannot_be_written_is_named(photos, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"photos.output=.*file/out: cannot write there \(Not a directory\)"):
        plan_outputs(photos, files(photos), str(tmp_path / "file" / "out"), recursive=False, key="photos.output")
    with pytest.raises(ConfigError, match="is a file; expected a folder"):
        plan_outputs(photos, files(photos), str(tmp_path / "file"), recursive=False)


def test_a_folder_in_the_place_of_an_output_is_named(photos, tmp_path):
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"a folder is in the place of the outputs of a\.png"):
        plan_outputs(photos, files(photos), str(tmp_path / "out"), recursive=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_folder_is_named(photos, tmp_path):
    out = tmp_path / "read_only"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="cannot write there"):
            plan_outputs(photos, files(photos), str(out), recursive=False)
    finally:
        out.chmod(0o700)
