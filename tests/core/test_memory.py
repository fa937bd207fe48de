"""Memory accounting: bytes held by live arrays, each buffer once, and the sampled peak."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import chainrule.core as mx
from chainrule.core import memory

# the accounting of NumPy buffers: skipped under CHAINRULE_DEVICE=gpu (make gpu-check; conftest.py)
pytestmark = pytest.mark.host_only


@pytest.fixture(autouse=True)
def _fresh():
    gc.collect()
    mx.reset_peak_memory()
    yield
    memory.ACCOUNTING.on = False  # later tests' mx.eval calls take no samples
    gc.collect()


def test_active_memory_counts_live_arrays_and_drops_them_when_freed():
    base = mx.get_active_memory()
    a = mx.zeros((1000,))  # float32: 4000 bytes
    assert mx.get_active_memory() - base == 4000
    b = mx.zeros((250,), dtype=mx.float64)
    assert mx.get_active_memory() - base == 6000
    del a, b
    assert mx.get_active_memory() == base


def test_views_and_shared_values_count_once():
    base = mx.get_active_memory()
    a = mx.zeros((100, 10))
    view = a[:5]  # a view into a's buffer
    alias = mx.array(a)  # may copy; counted only if it holds a buffer of its own
    own = 0 if np.shares_memory(np.asarray(alias), np.asarray(a)) else 4000
    assert mx.get_active_memory() - base == 4000 + own
    del a
    assert mx.get_active_memory() - base == 4000 + own  # the view keeps the buffer alive
    del view, alias


def test_recorded_graphs_hold_memory_until_released():
    x = mx.array(np.ones(1000, dtype=np.float32), requires_grad=True)
    base = mx.get_active_memory()
    y = mx.exp(mx.sin(x))  # the graph keeps sin(x) alive
    held = mx.get_active_memory() - base
    assert held == 8000
    del y
    gc.collect()
    assert mx.get_active_memory() == base


def test_peak_is_sampled_by_eval_and_reset_to_zero():
    mx.reset_peak_memory()
    assert mx.get_peak_memory() == 0
    base = mx.get_active_memory()
    a = mx.zeros((10_000,))
    mx.eval(a)
    del a
    mx.synchronize()
    assert mx.get_peak_memory() >= base + 40_000
    assert mx.get_active_memory() == base
    mx.reset_peak_memory()
    assert mx.get_peak_memory() == 0


def test_limits_return_the_previous_value_and_there_is_no_cache():
    old = mx.set_memory_limit(10)
    assert mx.set_memory_limit(old) == 10
    assert mx.set_memory_limit(old) == old
    old = mx.set_cache_limit(0)
    assert mx.set_cache_limit(old) == 0
    assert mx.get_cache_memory() == 0
    mx.clear_cache()
    assert mx.get_cache_memory() == 0
    assert mx.set_wired_limit(mx.set_wired_limit(5)) == 5
    with pytest.raises(ValueError):
        mx.set_memory_limit(-1)
    with pytest.raises(TypeError):
        mx.set_cache_limit("big")
    assert mx.metal.get_peak_memory is memory.get_peak_memory  # MLX's older spelling


def test_closures_of_transforms_do_not_keep_arrays():
    for transform in (mx.grad, mx.value_and_grad, mx.custom_function, mx.checkpoint):
        gc.collect()
        before = mx.get_active_memory()

        def make(transform=transform):
            d = {}
            d["f"] = transform(lambda x: d["x"])  # a cycle through the closure
            d["x"] = mx.array([0] * 1000)

        for _ in range(3):
            make()
            gc.collect()
        assert mx.get_active_memory() == before, transform


def test_evaluations_sample_at_most_a_share_of_the_time(monkeypatch):
    """Once accounting is on, ``mx.eval`` samples when one is due: the first evaluation after a
    call into the module, then at most one per SAMPLE_SHARE times a sample's cost (a sample
    walks every live object: a loop must not pay it every step)."""
    clock, samples = [0.0], [0]

    def costly_walk() -> int:
        samples[0] += 1
        clock[0] += 1.0  # a sample costs one (fake) second
        return 0

    monkeypatch.setattr(memory, "_clock", lambda: clock[0])
    monkeypatch.setattr(memory, "live_bytes", costly_walk)
    mx.reset_peak_memory()
    x = mx.ones(3)
    for _ in range(400):  # 40 s of steps, plus the samples' own seconds
        mx.eval(x)
        clock[0] += 0.1
    share = memory.SAMPLE_SHARE
    assert 2 <= samples[0] <= 1 + (40 + samples[0]) / share + 1
    for call in (mx.get_peak_memory, mx.reset_peak_memory, mx.get_active_memory):
        call()  # an explicit call: the next evaluation samples again
        before = samples[0]
        mx.synchronize()
        assert samples[0] == before + 1
        mx.eval(x)  # and the one after it waits its turn
        assert samples[0] == before + 1


def test_tensors_of_the_torch_front_door_count_too():
    """A ``chainrule.torch`` tensor (a subclass of the array) holds active memory as well."""
    torch = pytest.importorskip("chainrule.torch")
    base = mx.get_active_memory()
    t = torch.zeros(1000)  # float32: 4000 bytes
    assert mx.get_active_memory() - base == 4000
    del t
    assert mx.get_active_memory() == base
