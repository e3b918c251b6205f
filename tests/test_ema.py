"""EMA (Lightning's EMAWeightAveraging): the public hooks this project relies on, and a SIGTERM
during a validation with averaged weights saves the training weights as the training weights."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

from denoise.lit.callbacks import end_interrupted_validation
from tests.test_train_robust import run


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)


def test_validation_hooks_swap_the_average_in_and_out():
    """The contract ``end_interrupted_validation`` relies on: fails if Lightning changes it."""
    module, ema = Tiny(), EMAWeightAveraging(decay=0.5)
    trainer = SimpleNamespace(callbacks=[ema])
    end_interrupted_validation(trainer, module)  # no average yet (outside fit): nothing to swap
    ema.setup(trainer, module, "fit")  # the average starts as a copy of the weights
    average = module.layer.weight.detach().clone()
    with torch.no_grad():
        module.layer.weight.add_(1.0)
    raw = module.layer.weight.detach().clone()

    ema.on_validation_epoch_start(trainer, module)
    assert torch.equal(module.layer.weight, average)
    end_interrupted_validation(trainer, module)
    assert torch.equal(module.layer.weight, raw)


def test_sigterm_during_an_ema_validation_saves_the_training_weights(tmp_path):
    ema = ["callbacks=ema", "trainer.limit_val_batches=2"]  # two photos: the kill lands between them
    run(ema, tmp_path / "straight")
    kill = ["+callbacks.kill._target_=tests.train_helpers.KillDuringValidation", "+callbacks.kill.step=2"]
    with pytest.raises(SystemExit) as stop:
        run([*ema, *kill], tmp_path / "killed")
    assert stop.value.code == 143
    straight, killed = (torch.load(tmp_path / name / "checkpoints" / "last.ckpt", map_location="cpu",
                                   weights_only=False) for name in ("straight", "killed"))
    assert straight["global_step"] == killed["global_step"] == 2
    for entry in ("state_dict", "current_model_state"):  # averaged and training weights, each in its place
        for name, value in straight[entry].items():
            assert torch.equal(value, killed[entry][name]), (entry, name)
    assert not torch.equal(straight["state_dict"]["net.head.weight"], straight["current_model_state"]["net.head.weight"])
