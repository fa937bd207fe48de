"""Pitfall 4: one seed.

The complaints: ``torch.manual_seed`` does not seed NumPy or ``random``, so a script that
shuffles with NumPy or augments with ``random`` differs from run to run; DataLoader workers
forked from one process all start from the same NumPy state and produce identical
"random" augmentations; and which worker fetches which batch changes the numbers it gets.
``chainrule.seed(n)`` (also ``mx.random.seed``) seeds chainrule's, NumPy's and ``random``'s
global generators, and loader workers derive distinct, scheduling-independent seeds.
"""

import json
import random
import threading
import time

import numpy as np
import pytest
from pitfall_helpers import check, run_script

import chainrule
import chainrule.core as mx
import chainrule.torch as torch
from chainrule.data import DataLoader, Dataset, get_worker_info

SEEDERS = {
    "chainrule.seed": chainrule.seed,
    "mx.random.seed": mx.random.seed,
    "chainrule.torch.manual_seed": torch.manual_seed,
}


def _draws():
    return (
        mx.random.normal((3,)).tolist(),
        np.random.rand(3).tolist(),
        np.random.randint(0, 1000, 3).tolist(),
        [random.random() for _ in range(3)],
        random.sample(range(100), 3),
    )


@pytest.mark.parametrize("seeder", SEEDERS.values(), ids=list(SEEDERS))
def test_one_call_seeds_chainrule_numpy_and_random(seeder):
    seeder(123)
    first = _draws()
    seeder(123)
    assert _draws() == first
    seeder(124)
    other = _draws()
    assert all(a != b for a, b in zip(first, other))  # every source changed with the seed


def test_every_seeder_is_the_same_seed():
    runs = []
    for seeder in SEEDERS.values():
        seeder(7)
        runs.append(_draws())
    assert runs[0] == runs[1] == runs[2]


def test_seeds_beyond_32_bits_and_bad_seeds():
    chainrule.seed(2**40 + 5)
    a = _draws()
    chainrule.seed(2**40 + 5)
    assert _draws() == a
    with pytest.raises(ValueError, match="non-negative"):
        chainrule.seed(-1)


class Augmenting(Dataset):
    """Each sample draws from every source, as augmentation code does; workers sleep a
    random time so that threads finish out of order."""

    def __init__(self, n=24):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(random.Random().random() * 0.002)  # OS-random: scheduling varies per run
        info = get_worker_info()
        return (
            np.array([i, mx.random.uniform().item()], dtype=np.float64),
            np.array([info.id, info.seed], dtype=np.int64),
        )


def _epochs(loader, n=2):
    return [np.concatenate([np.asarray(b) for b in loader]) for _ in range(n)]


def _epochs_with_workers(loader, n=2):
    out = []
    for _ in range(n):
        batches = list(loader)
        draws = np.concatenate([np.asarray(d) for d, _ in batches])
        workers = np.concatenate([np.asarray(w) for _, w in batches])
        out.append((draws, workers))
    return out


def test_thread_workers_draw_the_same_numbers_whatever_thread_fetches_a_batch():
    runs = []
    for _ in range(2):
        chainrule.seed(0)
        loader = DataLoader(Augmenting(), batch_size=2, shuffle=True, num_workers=3)
        runs.append(_epochs_with_workers(loader))
    for (a, _), (b, _) in zip(*runs):
        np.testing.assert_array_equal(a, b)  # order and draws
    (first, workers), (second, _) = runs[0]
    assert len(set(first[:, 1])) == len(first)  # every sample drew a different number
    assert not np.array_equal(np.sort(first[:, 1]), np.sort(second[:, 1]))  # epochs differ
    seed_of = {int(w): int(s) for w, s in workers}
    assert len(seed_of) > 1 and len(set(seed_of.values())) == len(seed_of)  # one seed each
    assert {int(w) for w, _ in workers} <= {0, 1, 2}
    assert threading.current_thread() is threading.main_thread()


def test_process_workers_seed_numpy_and_random_per_batch():
    """The classic bug: forked workers share NumPy's state and repeat the same numbers."""

    class NumpyAugmenting(Dataset):
        def __len__(self):
            return 16

        def __getitem__(self, i):
            return np.array([i, np.random.rand(), random.random(), mx.random.uniform().item()])

    runs = []
    for _ in range(2):
        chainrule.seed(5)
        loader = DataLoader(
            NumpyAugmenting(), batch_size=2, shuffle=True, num_workers=2, worker_type="process"
        )
        runs.append(_epochs(loader))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    values = np.concatenate(runs[0])[:, 1:]
    for column in values.T:
        assert len(set(column)) == len(column)  # no two batches or workers repeat a draw


SCRIPT = """
import json, random, sys
import numpy as np
import chainrule
import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.data import DataLoader, Dataset

chainrule.seed(int(sys.argv[1]))

class Noisy(Dataset):  # augmentation with mx.random, fetched by worker threads
    def __init__(self, X, y):
        self.X, self.y = X, y
    def __len__(self):
        return len(self.X)
    def __getitem__(self, i):
        return self.X[i] + 0.1 * np.asarray(mx.random.normal((4,))), self.y[i]

X = np.random.normal(size=(96, 4)).astype(np.float32)          # NumPy's global generator
y = (X.sum(1) > 0).astype(np.int64)
keep = sorted(random.sample(range(96), 80))                       # Python's random
loader = DataLoader(Noisy(X[keep], y[keep]), batch_size=16, shuffle=True, num_workers=2)
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 2))
opt = optim.Adam(model.parameters(), lr=0.01)
loss_fn = nn.CrossEntropyLoss()
losses = []
for epoch in range(3):
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
weights = [np.asarray(p).tolist() for p in model.parameters()]
print(json.dumps({"losses": losses, "weights": weights}))
"""


def test_a_script_run_twice_in_separate_processes_gives_identical_results(tmp_path):
    runs = [json.loads(check(run_script(SCRIPT, "42", tmp_path=tmp_path))) for _ in range(2)]
    assert runs[0] == runs[1]  # bit for bit: losses of every step and every weight
    other = json.loads(check(run_script(SCRIPT, "43", tmp_path=tmp_path)))
    assert other["losses"] != runs[0]["losses"]  # the seed, not luck, made them equal
