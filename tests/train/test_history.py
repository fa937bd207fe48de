"""History: recording, JSON round trip, plots; and the progress display."""

import io
import json
import math
import re

import pytest

from chainrule.train import History
from chainrule.train.progress import EpochProgress, format_duration, format_logs, resolve_mode


def _history():
    h = History(params={"epochs": 3})
    h.record(0, {"loss": 1.0, "accuracy": 0.5, "lr": 0.1})
    h.record(1, {"loss": 0.5, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.65, "lr": 0.05})
    h.record(2, {"loss": float("nan"), "accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.7})
    return h


def test_record_aligns_keys_with_nan():
    h = _history()
    assert h.epoch == [0, 1, 2]
    assert h["val_loss"][0] != h["val_loss"][0]  # back-filled NaN
    assert h["val_loss"][1:] == [0.6, 0.4]
    assert math.isnan(h["lr"][2]) and h["lr"][:2] == [0.1, 0.05]
    assert all(len(v) == 3 for v in h.history.values())


def test_save_load_round_trip(tmp_path):
    h = _history()
    path = tmp_path / "history.json"
    h.save(path)
    data = json.loads(path.read_text())  # strict JSON: NaN written as null
    assert data["history"]["loss"][2] is None
    back = History.load(path)
    assert back.epoch == h.epoch and back.params == {"epochs": 3}
    for k, v in h.history.items():
        assert len(back[k]) == len(v)
        for a, b in zip(back[k], v):
            assert (math.isnan(a) and math.isnan(b)) or a == b
    assert [p.name for p in tmp_path.iterdir()] == ["history.json"]  # no temp file left


def test_load_refuses_other_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"a": 1}')
    with pytest.raises(ValueError, match="not a chainrule history"):
        History.load(p)
    p.write_bytes(b"\x00\xff garbage")
    with pytest.raises(ValueError, match=str(p)):
        History.load(p)


def test_plot_writes_a_png_without_a_window(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    backend = matplotlib.get_backend()
    out = _history().plot(tmp_path / "history.png", title="run")
    data = (tmp_path / "history.png").read_bytes()
    assert out.endswith("history.png") and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    assert matplotlib.get_backend() == backend  # pyplot's global state untouched
    with pytest.raises(ValueError, match="no figure"):
        _history().plot(tmp_path / "y.png", keys=["f1"])
    with pytest.raises(ValueError, match="empty"):
        History().plot(tmp_path / "z.png")


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_modes():
    assert resolve_mode(True, _Stream(True)) == "bar"
    assert resolve_mode(True, _Stream(False)) == "epoch"  # a file or pipe: one line per epoch
    assert resolve_mode(False) is None and resolve_mode("epoch") == "epoch"
    with pytest.raises(ValueError, match="progress"):
        resolve_mode("loud")


def test_progress_bar_and_epoch_lines():
    pytest.importorskip("tqdm")
    s = _Stream(True)
    bar = EpochProgress("bar", 0, 3, total=2, stream=s)
    bar.update(0.9)
    bar.update(0.7)
    bar.close({"loss": 0.7, "accuracy": 0.5})
    text = s.getvalue()
    assert "Epoch 1/3:" in text and "batch" in text  # the bar was drawn
    # the bar is replaced by one summary line with every figure
    assert text.endswith("\n") and "Epoch 1/3 - loss 0.7000 - accuracy 0.5000 - " in text
    s = _Stream(False)
    line = EpochProgress("epoch", 1, 3, total=2, stream=s)
    line.update(0.5)
    line.close({"loss": 0.5, "lr": 0.001})
    assert re.fullmatch(r"Epoch 2/3 - loss 0\.5000 - lr 0\.001 - \d+(ms|\.\ds)\n", s.getvalue())
    s = _Stream(False)
    quiet = EpochProgress(None, 0, 1, total=1, stream=s)
    quiet.update(1.0)
    quiet.close({"loss": 1.0})
    assert s.getvalue() == ""
    assert format_logs({"loss": 1.0, "name": "x"}) == "loss 1.0000"


def test_a_fast_epoch_does_not_show_zero_seconds(monkeypatch):
    """A small table's epoch takes milliseconds: it used to print "0.0s" every epoch."""
    from chainrule.train import progress

    clock = iter([100.0, 100.018, 200.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    s = _Stream(False)
    line = EpochProgress("epoch", 0, 1, total=1, stream=s)
    line.close({"loss": 0.5})
    assert s.getvalue() == "Epoch 1/1 - loss 0.5000 - 18ms\n"
    s = _Stream(False)
    EpochProgress("epoch", 0, 1, total=1, stream=s).close({})  # an epoch cut by an exception
    assert s.getvalue() == ""
    assert [format_duration(t) for t in (0.0004, 0.25, 1.0, 59.94, 61.4, 3725)] == [
        "0ms",
        "250ms",
        "1.0s",
        "59.9s",
        "1m01s",
        "62m05s",
    ]


def test_plot_marks_the_kept_epoch(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    h = _history()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG
        h.plot(tmp_path / "plain.svg")
        h.params["kept_epoch"] = 1
        h.plot(tmp_path / "marked.svg")
        h.plot(tmp_path / "other.svg", mark_epoch=2)
    assert "kept: epoch" not in (tmp_path / "plain.svg").read_text()
    assert "kept: epoch 2" in (tmp_path / "marked.svg").read_text()
    assert "kept: epoch 3" in (tmp_path / "other.svg").read_text()
    again = History.load(_saved(h, tmp_path))
    assert again.params["kept_epoch"] == 1  # kept in history.json, so a re-plot marks it too


def _saved(h, tmp_path):
    h.save(tmp_path / "h.json")
    return tmp_path / "h.json"


def test_missing_tqdm_names_the_extra(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "tqdm":
            raise ImportError("no tqdm")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"chainrule\[train\]"):
        EpochProgress("bar", 0, 1, total=1, stream=_Stream(True))


def test_history_files_take_their_mode_from_the_umask(tmp_path):
    """Hardening item 10: History.save and History.plot write through core.io's writer."""
    import os
    import stat

    h = _history()
    for umask, expected in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            h.save(tmp_path / f"h{umask}.json")
            h.plot(tmp_path / f"h{umask}.png")
        finally:
            os.umask(old)
        for suffix in ("json", "png"):
            mode = stat.S_IMODE(os.stat(tmp_path / f"h{umask}.{suffix}").st_mode)
            assert mode == expected, (suffix, oct(mode))
