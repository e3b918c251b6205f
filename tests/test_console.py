"""What a user sees: no third-party warnings they cannot act on, a progress bar of steps."""

from __future__ import annotations

import logging
import warnings

import pytest
from hydra.utils import instantiate

from denoise.cli.quiet import quiet_third_party_warnings
from denoise.lit.progress import StepProgressBar, clock
from tests.conftest import compose_train, run_entry

LEAFSPEC = ("`isinstance(treespec, LeafSpec)` is deprecated, use `isinstance(treespec, TreeSpec) and "
            "treespec.is_leaf()` instead.")
THIRD_PARTY = [
    (LEAFSPEC, FutureWarning),
    ("Total length of `DataLoader` across ranks is zero. Please make sure this was your intention.", UserWarning),
    ("Checkpoint directory /x/checkpoints exists and is not empty.", UserWarning),
    ("Precision bf16-mixed is not supported by the model summary.  Estimated model size in MB will not be "
     "accurate. Using 32 bits instead.", UserWarning),
]


def test_only_the_listed_third_party_warnings_are_silenced():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_third_party_warnings()
        for message, category in THIRD_PARTY:
            warnings.warn(message, category, stacklevel=1)
        warnings.warn("skipping a.png: smaller than data.crop_size=160", UserWarning, stacklevel=1)  # ours
        warnings.warn("Checkpoint directory /x exists and is not empty.", DeprecationWarning, stacklevel=1)
        warnings.warn("Total length of `DataLoader` across ranks is zero, but local rank has zero length.",
                      UserWarning, stacklevel=1)  # uneven shards in DDP: worth seeing
    assert [str(w.message)[:24] for w in caught] == [
        "skipping a.png: smaller ", "Checkpoint directory /x ", "Total length of `DataLoa"]


def test_only_the_listed_third_party_log_lines_are_dropped(caplog):
    quiet_third_party_warnings()
    quiet_third_party_warnings()  # twice (photos.py runs two stages): one filter
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(rank_zero.filters) == 1
    with caplog.at_level(logging.INFO):
        rank_zero.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing "
                       "[litlogger](https://pypi.org/project/litlogger/) to enable LitLogger.")
        rank_zero.info("GPU available: False, used: False")
    assert [record.getMessage() for record in caplog.records] == ["GPU available: False, used: False"]


def test_a_training_run_prints_steps_and_no_warnings_also_into_an_existing_run_dir(tmp_path):
    run = tmp_path / "run"
    first = run_entry("train.py", ["debug=fast", "logger=none"], run)
    again = run_entry("train.py", ["debug=fast", "logger=none", "callbacks=ema"], run)  # checkpoints are there
    for result in (first, again):
        assert result.returncode == 0, result.stderr[-2000:]
        for noise in ("LeafSpec", "Checkpoint directory", "Epoch ", "litlogger"):
            assert noise not in result.stdout + result.stderr, (noise, result.stderr[-2000:])
        assert "step 4/4 | loss " in result.stdout and " left" in result.stdout


@pytest.mark.parametrize("group", ["default", "none", "ema"])
def test_every_callbacks_group_has_the_step_progress_bar(group, tmp_path):
    cfg = compose_train([f"callbacks={group}"], tmp_path)
    callbacks = [instantiate(entry) for entry in cfg.callbacks.values() if entry and "_target_" in entry]
    assert sum(isinstance(c, StepProgressBar) for c in callbacks) == 1


def test_clock():
    assert clock(0) == "0:00" and clock(61.4) == "1:01" and clock(3725) == "1:02:05" and clock(-3) == "0:00"
