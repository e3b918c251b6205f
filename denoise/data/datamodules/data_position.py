"""Where a training run is in its data, so that a resumed run draws exactly the crops it would have.

Training crops come from the global generators (torch, numpy, random) of the main process, so
their state is the position in the data: a checkpoint taken after ``n`` training batches holds
the state from before batch ``n`` was fetched, and a resumed run restores it right before its
first fetch, after the DataLoader has drawn its own seed as the original run did. Lightning
fetches one batch ahead, so the states are noted per fetched batch and looked up by the number
of batches that reached the training step. With worker processes the crops come from the
workers' own generators: there the states are saved and restored as they are.
"""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset

# Lightning fetches one batch ahead; a few more notes cover any checkpoint taken in between.
_NOTES_KEPT = 5


def collect_rng_states() -> dict:
    """The global generators' states, as tensors and ints only (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"].cpu())
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class DataPosition:
    """The generator states before each training batch, and how many batches were trained on."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.fetched_items = 0
        self.trained_batches = 0
        self.notes: dict[int, dict] = {}  # batch index -> generator states before it was fetched
        self.pending: dict | None = None  # states to restore right before the next fetch (resume)

    def before_fetch(self) -> None:
        if self.pending is not None:
            set_rng_states(self.pending)
            self.pending = None
        if self.fetched_items % self.batch_size == 0:
            batch = self.fetched_items // self.batch_size
            self.notes[batch] = collect_rng_states()
            for old in [key for key in self.notes if key < batch - _NOTES_KEPT + 1]:
                del self.notes[old]
        self.fetched_items += 1

    def batch_trained(self) -> None:
        self.trained_batches += 1

    def state_dict(self) -> dict:
        return {"rng_states": self.notes.get(self.trained_batches) or collect_rng_states()}

    def load_state_dict(self, state: dict, tracked: bool) -> None:
        """Restore at the next fetch when the training set is ``tracked`` (fetched in this process), else now."""
        if tracked:
            self.pending = state["rng_states"]
        else:
            set_rng_states(state["rng_states"])


class PositionedDataset(Dataset):
    """A training set whose every fetch is noted in a :class:`DataPosition`."""

    def __init__(self, dataset: Dataset, position: DataPosition):
        self.dataset, self.position = dataset, position

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        self.position.before_fetch()
        return self.dataset[index]
