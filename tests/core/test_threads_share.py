"""Independent chainrule processes training at once share the machine's cores (issue 20,
``chainrule.core.threads.CoreShare``, used by ``fit`` and so by the ``chainrule`` command)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.core import threads
from chainrule.train import Callback, fit


@pytest.fixture
def clean_env(monkeypatch):
    """No user thread variable, and the BLAS count restored afterwards."""
    for name in threads.ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    before = mx.get_num_threads()
    yield
    mx.set_num_threads(before)


@pytest.fixture
def sleeper():
    """Another live process (its pid stands for a second chainrule training run)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_alone_keeps_its_threads_and_two_halve_them(tmp_path, clean_env, sleeper):
    mx.set_num_threads(2)
    share = threads.CoreShare(directory=tmp_path, cores=2, interval=0.0)
    with share:
        assert (tmp_path / str(os.getpid())).exists()
        assert share.processes() == 1
        assert share.threads == 2 and mx.get_num_threads() == 2
        (tmp_path / str(sleeper.pid)).touch()  # a second training process starts
        share.poll()
        assert share.processes() == 2
        assert share.threads == 1 and mx.get_num_threads() == 1
        sleeper.kill()
        sleeper.wait()
        share.poll()  # it ended without removing its entry: the entry is dropped
        assert not (tmp_path / str(sleeper.pid)).exists()
        assert share.threads == 2 and mx.get_num_threads() == 2
    assert not (tmp_path / str(os.getpid())).exists()


def test_leaving_restores_the_count_found_on_entering(tmp_path, clean_env, sleeper):
    mx.set_num_threads(2)
    (tmp_path / str(sleeper.pid)).touch()
    with threads.CoreShare(directory=tmp_path, cores=2) as share:
        assert share.threads == 1 and mx.get_num_threads() == 1
    assert mx.get_num_threads() == 2
    assert (tmp_path / str(sleeper.pid)).exists()  # a live process's entry is kept


def test_never_raises_above_the_starting_count(tmp_path, clean_env):
    mx.set_num_threads(1)
    with threads.CoreShare(directory=tmp_path, cores=8) as share:
        assert share.threads == 1 and mx.get_num_threads() == 1


def test_a_user_variable_wins(tmp_path, clean_env, monkeypatch, sleeper):
    mx.set_num_threads(2)
    (tmp_path / str(sleeper.pid)).touch()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with threads.CoreShare(directory=tmp_path, cores=2) as share:
        assert share.rebalance() is None
        assert mx.get_num_threads() == 2
    assert not (tmp_path / str(os.getpid())).exists()


def test_dead_and_foreign_entries_are_ignored(tmp_path, clean_env):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (tmp_path / str(proc.pid)).touch()  # a process that ended without cleaning up
    (tmp_path / "notes.txt").write_text("not an entry")
    with threads.CoreShare(directory=tmp_path, cores=2) as share:
        assert share.processes() == 1
    assert not (tmp_path / str(proc.pid)).exists()
    assert (tmp_path / "notes.txt").exists()


def test_an_unwritable_registry_trains_alone(tmp_path, clean_env):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with threads.CoreShare(directory=blocker / "sub", cores=2) as share:
        assert share.rebalance() is None


def test_fit_registers_while_it_trains(tmp_path, clean_env, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    seen = []

    class Look(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(sorted(p.name for p in tmp_path.glob("chainrule-cores-*/*")))

    x = np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32)
    y = (x.sum(1) > 0).astype(np.int64)
    model = nn.Linear(3, 2)
    fit(
        model,
        optim.SGD(learning_rate=0.1),
        nn.losses.cross_entropy,
        (x, y),
        epochs=1,
        batch_size=8,
        callbacks=[Look()],
        progress=False,
    )
    assert seen == [[str(os.getpid())]] * 2
    assert list(tmp_path.glob("chainrule-cores-*/*")) == []
