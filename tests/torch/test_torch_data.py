"""torch.utils.data: the worker API under PyTorch's names."""

from __future__ import annotations

import numpy as np

import chainrule.data
import chainrule.torch as torch
from chainrule.torch.utils.data import DataLoader, Dataset, get_worker_info


class _Ids(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return np.array(
            [i, -1 if info is None else info.id, -1 if info is None else info.num_workers]
        )


def test_get_worker_info_is_the_loaders_own():
    assert torch.utils.data.get_worker_info is chainrule.data.get_worker_info
    assert get_worker_info() is None  # not in a worker
    rows = np.concatenate([np.asarray(b) for b in DataLoader(_Ids(), batch_size=2, num_workers=2)])
    assert sorted(rows[:, 0].tolist()) == list(range(8))
    assert set(rows[:, 1].tolist()) <= {0, 1} and set(rows[:, 2].tolist()) == {2}
    rows = np.concatenate([np.asarray(b) for b in DataLoader(_Ids(), batch_size=4)])
    assert set(rows[:, 1].tolist()) == {-1}
