"""The data position: a resumed run draws exactly the training batches the interrupted one would have."""

import torch
from torch.utils.data import Dataset

from denoise.data.datamodules.data_position import DataPosition, PositionedDataset


class RandomDraws(Dataset):
    """Items drawn from the global generator, as the random training crops are."""

    def __len__(self) -> int:
        return 100

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.rand(3)


def fetch_batch(data: Dataset, size: int = 2) -> torch.Tensor:
    return torch.stack([data[i] for i in range(size)])


def test_the_saved_position_is_before_the_first_batch_not_trained_on():
    torch.manual_seed(0)
    position = DataPosition(batch_size=2)
    data = PositionedDataset(RandomDraws(), position)
    batches = [fetch_batch(data)]
    for _ in range(3):  # the loader fetches one batch ahead of training
        batches.append(fetch_batch(data))
        position.batch_trained()
    saved = position.state_dict()  # after 3 trained batches, with batch 3 already fetched

    torch.manual_seed(1)  # a new process: other generator states
    resumed = DataPosition(batch_size=2)
    resumed.load_state_dict(saved, tracked=True)
    torch.rand(5)  # the loader draws its own seed before the first fetch
    assert torch.equal(fetch_batch(PositionedDataset(RandomDraws(), resumed)), batches[3])


def test_without_tracked_fetches_the_states_are_restored_at_once():
    torch.manual_seed(0)
    saved = DataPosition(batch_size=2).state_dict()
    expected = torch.rand(3)
    torch.manual_seed(1)
    DataPosition(batch_size=2).load_state_dict(saved, tracked=False)
    assert torch.equal(torch.rand(3), expected)
