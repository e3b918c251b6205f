"""NaN or Inf samples are refused by file name in predict, eval and training, never written or learnt."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from denoise.cli.eval import evaluate
from denoise.cli.predict import predict
from denoise.errors import DataError
from tests.conftest import compose_entry, compose_train
from tests.test_eval import demo_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return demo_checkpoint(tmp_path_factory)


def float_image(folder: Path, name: str, poison: float | None = None) -> Path:
    image = np.random.default_rng(0).uniform(0.2, 0.8, (40, 40, 3)).astype(np.float32)
    if poison is not None:
        image[3, 5, 1] = poison
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, image)
    return folder / name


def test_predict_refuses_nan_and_inf_files_by_name_and_writes_nothing_for_them(checkpoint, tmp_path):
    source = tmp_path / "in"
    float_image(source, "good.npy")
    float_image(source, "nan.npy", float("nan"))
    float_image(source, "inf.npy", float("inf"))
    output = tmp_path / "out"
    result = predict(compose_entry("predict", [f"ckpt_path={checkpoint}", f"input={source}", f"output={output}"],
                                   tmp_path / "run"))
    assert sorted(result["failed"]) == ["inf.npy", "nan.npy"]
    assert result["failed"]["nan.npy"] == f"{source / 'nan.npy'}: 1 NaN or Inf values; fix the file or leave it out of the input"
    assert sorted(p.name for p in output.iterdir()) == ["good.npy"]
    assert np.isfinite(np.load(output / "good.npy")).all()


def test_eval_refuses_a_nan_image_by_name(checkpoint, tmp_path):
    noisy = tmp_path / "noisy"
    float_image(noisy, "a.npy")
    float_image(noisy, "b.npy", float("nan"))
    cfg = compose_entry("eval", [f"ckpt_path={checkpoint}", "data=folder", f"data.noisy_dir={noisy}", "noise=none",
                                 "data.num_workers=0"], tmp_path / "run")
    with pytest.raises(DataError, match=rf"^{noisy / 'b.npy'}: 1 NaN or Inf values; fix or replace the file$"):
        evaluate(cfg)


def test_training_refuses_a_nan_image_in_one_line_also_from_a_loader_worker(tmp_path, capsys):
    import train as train_entry

    noisy = tmp_path / "noisy"
    float_image(noisy, "only.npy", float("nan"))
    cfg = compose_train(["debug=fast", "data=folder", f"data.noisy_dir={noisy}", "noise=none", "data.crop_size=32",
                         "data.batch_size=2", "data.epoch_length=4", "data.num_workers=1", "logger=csv"],
                        tmp_path / "run")
    assert cfg.data.num_workers == 1  # the error is raised in a worker process and re-raised here
    with pytest.raises(SystemExit) as stop:
        train_entry.main(cfg)
    assert stop.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {noisy / 'only.npy'}: 1 NaN or Inf values; fix or replace the file; "
        f"set data.skip_bad=true to skip bad files"
    )
