"""Pitfall 7: progress output fit for notebooks and log files.

The complaints: Keras's ``verbose=1`` fills log files with thousands of ``\\r``-joined bar
updates and floods notebooks; tqdm bars redraw on every batch and slow fast loops; a bar
written to a pipe or a file leaves control characters in it. chainrule's ``fit`` draws one
bar per epoch that updates in place in a terminal or notebook (``tqdm.auto``), redrawn at
most four times a second, and writes one plain line per epoch to a file or a pipe.
"""

import io
import os
import re
import sys
import time
import types

import numpy as np
import pytest
from pitfall_helpers import ROOT, check, run_script

import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.train import Callback, fit
from chainrule.train.progress import MIN_INTERVAL, resolve_mode

pytest.importorskip("tqdm")

CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # every control character but "\n"
EPOCH_LINE = re.compile(
    r"Epoch (\d+)/(\d+) - loss \d+\.\d{4} - accuracy \d\.\d{4} - lr 0\.1 - (?:\d+ms|\d+\.\ds)"
)

SCRIPT = """
import sys, time
import numpy as np
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.train import Callback, fit

class Slow(Callback):  # with an argument, a batch takes at least 3 ms: 0.3 s per epoch
    def on_batch_end(self, batch, logs):
        time.sleep(0.003)

rng = np.random.default_rng(0)
X = rng.normal(size=(100, 3)).astype(np.float32)
y = (X[:, 0] > 0).astype(np.int64)
model = nn.Linear(3, 2)
fit(model, optim.SGD(learning_rate=0.1), nn.CrossEntropyLoss(), (X, y), epochs=2,
    batch_size=1, callbacks=[Slow()] if sys.argv[1:] else [])
"""


def test_a_file_gets_one_clean_line_per_epoch(tmp_path):
    log = tmp_path / "train.log"
    with open(log, "w") as f:
        check(run_script(SCRIPT, tmp_path=tmp_path, stdout=f, stderr=None, capture_output=False))
    text = log.read_text()
    assert not CONTROL.search(text), repr(text[:200])
    lines = text.splitlines()
    assert len(lines) == 2, lines
    assert [EPOCH_LINE.fullmatch(line).groups() for line in lines] == [("1", "2"), ("2", "2")]


def test_a_pipe_gets_one_clean_line_per_epoch_and_nothing_on_stderr(tmp_path):
    proc = run_script(SCRIPT, tmp_path=tmp_path)
    out = check(proc)
    assert not CONTROL.search(out) and not CONTROL.search(proc.stderr)
    assert proc.stderr == ""
    assert len(out.splitlines()) == 2 and all(EPOCH_LINE.fullmatch(x) for x in out.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pseudo-terminals: Linux")
@pytest.mark.parametrize("size", [(24, 100), (0, 0)], ids=["100 columns", "no size reported"])
def test_a_terminal_gets_a_bar_that_updates_in_place(tmp_path, size):
    import fcntl
    import pty
    import struct
    import subprocess
    import termios

    (tmp_path / "script.py").write_text(SCRIPT)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("COLUMNS", None)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "script.py", "slow"],
        cwd=tmp_path,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    elapsed = time.perf_counter() - start
    os.close(master)
    text = b"".join(chunks).decode()
    assert "\r" in text  # redrawn in place
    redraws = text.count("Epoch 1/2:") + text.count("Epoch 2/2:")  # the bar's label
    assert 2 <= redraws <= elapsed / MIN_INTERVAL + 6, (redraws, elapsed)  # not 400 per epoch
    # after each bar, the epoch's summary line
    summaries = EPOCH_LINE.findall(text)
    assert summaries == [("1", "2"), ("2", "2")]


class _Terminal(io.StringIO):
    """A stream that says it is a terminal and records when each write happened."""

    def __init__(self):
        super().__init__()
        self.times = []

    def isatty(self):
        return True

    def write(self, s):
        self.times.append((time.perf_counter(), s))
        return super().write(s)


class _Slow(Callback):
    def on_batch_end(self, batch, logs):
        time.sleep(0.001)


def test_the_bar_is_redrawn_at_most_a_few_times_a_second(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    start = time.perf_counter()
    fit(
        nn.Linear(3, 2),
        optim.SGD(learning_rate=0.1),
        nn.CrossEntropyLoss(),
        (X, y),
        epochs=1,
        batch_size=1,
        callbacks=[_Slow()],
    )
    elapsed = time.perf_counter() - start
    draws = [t for t, s in terminal.times if "Epoch 1/1:" in s]
    assert elapsed > 0.4  # 400 batches of at least 1 ms
    assert 2 <= len(draws) <= elapsed / MIN_INTERVAL + 3, (len(draws), elapsed)
    gaps = np.diff(draws[1:-1])  # between the first and the final draw: tqdm's own pace
    assert np.all(gaps >= MIN_INTERVAL * 0.9), gaps
    assert EPOCH_LINE.search(terminal.getvalue())


def test_a_notebook_gets_a_bar(monkeypatch):
    """In Jupyter stdout is not a terminal, but a bar (a widget with ipywidgets) is wanted."""
    stream = io.StringIO()  # isatty() is False, as for ipykernel's stream
    assert resolve_mode(True, stream) == "epoch"
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: shell
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert resolve_mode(True, stream) == "bar"
    shell.config = {}  # a terminal IPython is not a notebook
    assert resolve_mode(True, stream) == "epoch"


def test_the_bar_comes_from_tqdm_auto(monkeypatch):
    """``tqdm.auto`` picks the notebook widget in Jupyter and the text bar elsewhere."""
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    X = np.ones((8, 3), np.float32)
    fit(
        nn.Linear(3, 2), optim.SGD(0.1), nn.CrossEntropyLoss(), (X, np.zeros(8, np.int64)), epochs=2
    )
    assert len(made) == 2  # one bar per epoch
    assert all(kw["mininterval"] == MIN_INTERVAL and kw["leave"] is False for kw in made)
