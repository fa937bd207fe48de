"""Devices and streams as MLX's CPU build has them, and mx.export_to_dot."""

from __future__ import annotations

import io
import threading

import pytest

import chainrule.core as mx

# these tests choose devices themselves: skipped under CHAINRULE_DEVICE=gpu (make gpu-check; conftest.py)
pytestmark = pytest.mark.host_only


def test_device_count_and_info():
    assert mx.device_count(mx.cpu) == 1 and mx.device_count(mx.gpu) == 0
    info = mx.device_info(mx.cpu)
    assert info["device_name"] and "architecture" in info
    assert mx.device_info() == info
    info["device_name"] = "changed"  # a copy
    assert mx.device_info()["device_name"] != "changed"
    with pytest.raises(ValueError, match="GPU"):
        mx.device_info(mx.gpu)


def test_streams_are_distinct_and_the_gpu_has_none():
    s1 = mx.default_stream(mx.default_device())
    s2 = mx.new_stream(mx.default_device())
    assert s1 == mx.default_stream(mx.cpu) and s1 != s2 and s2.device == mx.cpu
    assert repr(s2) == f"Stream(Device(cpu, 0), {s2.index})"
    with pytest.raises(ValueError):
        mx.default_stream(mx.gpu)
    with pytest.raises(ValueError):
        mx.new_stream(mx.gpu)
    with mx.stream(s2):
        assert (mx.arange(3) * 2).tolist() == [0, 2, 4]
        assert mx.default_device() == mx.cpu


def _run(target) -> list:
    errors: list = []

    def wrapped():
        try:
            target()
        except Exception as e:  # noqa: BLE001  (reported to the test)
            errors.append(e)

    t = threading.Thread(target=wrapped)
    t.start()
    t.join()
    return errors


def test_a_stream_belongs_to_the_thread_that_made_it():
    mine = mx.new_stream(mx.cpu)

    def use():
        with mx.stream(mine):
            mx.eval(mx.arange(3) * 2)

    (err,) = _run(use)
    assert isinstance(err, RuntimeError) and "thread" in str(err)
    use()  # fine on the making thread


def test_thread_local_and_shared_streams_work_on_any_thread():
    local = mx.new_thread_local_stream(mx.cpu)
    shared = mx.new_thread_unsafe_stream(mx.cpu)
    seen = []

    def use():
        with mx.stream(local):
            seen.append(mx.default_device())
            assert (mx.arange(4) + 1).tolist() == [1, 2, 3, 4]
        with mx.stream(shared):
            pass
        mx.clear_streams()

    assert _run(use) == [] and _run(use) == []
    assert seen == [mx.cpu, mx.cpu]


def test_clear_streams_forgets_the_threads_streams():
    def use():
        s = mx.new_stream(mx.cpu)
        mx.clear_streams()
        with pytest.raises(RuntimeError):
            with mx.stream(s):
                pass
        assert mx.default_stream(mx.cpu) != s  # made again on demand

    assert _run(use) == []


def test_export_to_dot_draws_the_recorded_graph():
    a = mx.array([1.0, 2.0], requires_grad=True)
    b = mx.array(3.0)
    c = mx.sin(a) * b
    f = io.StringIO()
    mx.export_to_dot(f, c, a=a)
    text = f.getvalue()
    assert text.startswith("digraph {") and text.rstrip().endswith("}")
    assert 'label="sin"' in text and 'label="multiply"' in text
    assert '{ rank=source; "a"; }' in text  # the input, under its keyword's name
    assert text.count("rank=source") == 2  # a and the constant b

    f = io.StringIO()
    mx.export_to_dot(f, *mx.divmod(mx.array(7.0), mx.array(2.0)))  # nothing recorded
    assert f.getvalue().count("rank=source") == 2

    with pytest.raises(ValueError):
        mx.export_to_dot(42, c)


def test_export_to_dot_writes_a_path_and_walks_long_chains(tmp_path):
    x = mx.array(1.0, requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y + 1.0
    path = tmp_path / "graph.dot"
    mx.export_to_dot(str(path), y)
    text = path.read_text()
    assert text.count("->") == 2 * 20_000
