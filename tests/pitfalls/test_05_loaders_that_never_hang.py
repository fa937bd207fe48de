"""Pitfall 5: loaders that never hang.

The complaints: ``DataLoader(num_workers>0)`` hangs or crashes in Jupyter and on macOS and
Windows (spawned workers re-import ``__main__``, need an ``if __name__ == "__main__":`` guard
and a picklable dataset), and an exception in a worker becomes "DataLoader worker exited
unexpectedly" or a silent hang, far from its cause. chainrule's workers are threads by
default, so none of that applies; process workers are opt-in; a worker's exception is raised
in the training loop with its own traceback and a note naming the worker and batch.
"""

import os
import sys
import threading
import traceback

import numpy as np
import pytest
from pitfall_helpers import ROOT, check, run_script

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.data import DataLoader, Dataset, TensorDataset
from chainrule.train import fit

pytestmark = pytest.mark.timeout(60)  # a hang fails the test instead of the whole run


class WhoFetches(Dataset):
    """Samples record the thread and process that fetched them."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return np.array([i, threading.get_ident() % 2**31, os.getpid()], dtype=np.int64)


def test_workers_are_threads_by_default():
    loader = DataLoader(WhoFetches(), batch_size=3, num_workers=2)
    assert loader.worker_type == "thread"
    rows = np.concatenate([np.asarray(b) for b in loader])
    assert rows[:, 0].tolist() == list(range(12))  # in order
    assert set(rows[:, 2]) == {os.getpid()}  # this process
    assert threading.get_ident() % 2**31 not in set(rows[:, 1])  # other threads


NO_GUARD = """
import multiprocessing
multiprocessing.set_start_method("spawn", force=True)  # macOS' and Windows' default
import numpy as np
from chainrule.data import DataLoader, Dataset

class Squares(Dataset):   # defined in __main__: a spawned process could not import it
    def __len__(self):
        return 10
    def __getitem__(self, i):
        return np.float32(i * i)

print(sum(float(b.sum()) for b in DataLoader(Squares(), batch_size=3, num_workers=4)))
"""


def test_no_main_guard_needed_even_with_the_spawn_start_method(tmp_path):
    """A script without ``if __name__ == "__main__":`` under spawn, as on macOS/Windows."""
    out = check(run_script(NO_GUARD, tmp_path=tmp_path, timeout=60))
    assert float(out) == sum(i * i for i in range(10))


def test_works_from_code_with_no_file_as_in_a_notebook(tmp_path):
    """A notebook cell's ``__main__`` has no file; feed the code on stdin to get the same."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-"],
        input=NO_GUARD,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert float(check(proc)) == sum(i * i for i in range(10))


def test_process_workers_are_opt_in_and_give_the_same_batches():
    ds = WhoFetches()
    base = np.concatenate([np.asarray(b) for b in DataLoader(ds, batch_size=3)])
    loader = DataLoader(ds, batch_size=3, num_workers=2, worker_type="process")
    rows = np.concatenate([np.asarray(b) for b in loader])
    assert rows[:, 0].tolist() == base[:, 0].tolist()
    assert os.getpid() not in set(rows[:, 2])  # fetched in other processes


def test_spawned_process_workers_with_a_picklable_dataset():
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    loader = DataLoader(
        TensorDataset(X, np.arange(20)),
        batch_size=4,
        num_workers=2,
        multiprocessing_context="spawn",  # implies worker_type="process", as in PyTorch
    )
    assert loader.worker_type == "process"
    got = np.concatenate([np.asarray(xb) for xb, _ in loader])
    np.testing.assert_array_equal(got, X)


class Broken(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 7:
            raise KeyError(f"sample {i} is missing from the index")
        return np.float32(i), np.int64(i % 2)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_workers_exception_surfaces_in_the_loop_with_its_traceback(worker_type):
    loader = DataLoader(Broken(), batch_size=2, num_workers=2, worker_type=worker_type)
    seen = []
    with pytest.raises(KeyError, match="sample 7 is missing") as err:
        for xb, _ in loader:
            seen.append(np.asarray(xb).tolist())
    assert seen == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]  # every batch before the bad one
    text = "".join(traceback.format_exception(err.value))
    # the worker's own frames: the line that raised, in the dataset's __getitem__
    assert "in __getitem__" in text and 'raise KeyError(f"sample {i} is missing' in text
    assert f"DataLoader worker {worker_type}" in text and "batch 3" in text
    assert "samples 6..7" in text


@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_workers_exception_stops_fit_with_its_traceback(worker_type):
    model = nn.Linear(1, 2)
    loader = DataLoader(Broken(), batch_size=2, num_workers=2, worker_type=worker_type)

    class Reshaped:  # (N,) features -> (N, 1)
        def __iter__(self):
            for xb, yb in loader:
                yield xb.reshape(-1, 1), yb

    with pytest.raises(KeyError) as err:
        fit(
            model,
            optim.SGD(learning_rate=0.1),
            nn.losses.cross_entropy,
            Reshaped(),
            epochs=2,
            progress=False,
        )
    text = "".join(traceback.format_exception(err.value))
    assert "in __getitem__" in text and "sample 7 is missing" in text


class Dies(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        if i == 5:
            os._exit(3)  # killed: out of memory, a segfault in a C extension...
        return np.float32(i)


def test_a_worker_process_that_dies_is_an_error_not_a_hang():
    loader = DataLoader(Dies(), batch_size=2, num_workers=2, worker_type="process")
    with pytest.raises(RuntimeError, match="worker process exited unexpectedly"):
        list(loader)


@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("persistent", [False, True])
def test_leaving_an_epoch_early_and_starting_again(worker_type, persistent):
    loader = DataLoader(
        TensorDataset(np.arange(30, dtype=np.float32)),
        batch_size=3,
        num_workers=2,
        worker_type=worker_type,
        persistent_workers=persistent,
    )
    for i, _ in enumerate(loader):
        if i == 1:
            break
    for _ in range(2):
        got = np.concatenate([np.asarray(b[0]) for b in loader])
        np.testing.assert_array_equal(got, np.arange(30))


def test_bad_worker_settings_are_refused():
    with pytest.raises(ValueError, match="worker_type must be 'thread' or 'process'"):
        DataLoader(WhoFetches(), num_workers=2, worker_type="fork")
    with pytest.raises(ValueError, match="process workers need num_workers > 0"):
        DataLoader(WhoFetches(), worker_type="process")


def test_fit_trains_through_thread_workers():
    mx.random.seed(0)
    X = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    loader = DataLoader(TensorDataset(X, y), batch_size=8, shuffle=True, num_workers=2)
    history = fit(
        model,
        optim.Adam(learning_rate=0.05),
        nn.CrossEntropyLoss(),
        loader,
        epochs=5,
        progress=False,
    )
    assert history["accuracy"][-1] > 0.8
