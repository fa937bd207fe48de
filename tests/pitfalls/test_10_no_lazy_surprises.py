"""Pitfall 10: no lazy surprises.

The complaints: in lazy frameworks ``print(loss)`` shows a graph node or a buffer
description instead of a number (tinygrad's ``<Tensor <UOp ...>>``), and a loop that
accumulates losses grows memory without bound until it is evaluated (MLX without
``mx.eval``, PyTorch's ``total += loss`` keeping every step's graph). chainrule computes
eagerly: printing and formatting show the numbers, and a loop that accumulates
``loss.item()`` keeps its memory flat; a fresh process measures the peak over 10,000 steps.
"""

import contextlib
import io
import json
import os
import re

import numpy as np
import pytest
from pitfall_helpers import check, run_script

import chainrule.core as mx
import chainrule.nn as nn

NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _printed(*objects) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print(*objects)
    return out.getvalue()


def _numbers(text: str) -> list[float]:
    return [float(x) for x in NUMBER.findall(text.split("dtype")[0])]


def test_print_and_fstrings_of_a_loss_show_its_value():
    x = mx.array([0.5, -1.25, 2.0])
    loss = (x * x).mean()
    value = float(np.mean(np.array([0.5, -1.25, 2.0]) ** 2))
    for text in (_printed(loss), f"{loss}", str(loss), repr(loss)):
        assert _numbers(text) == pytest.approx([value], rel=1e-5), text
    assert f"{loss:.4f}" == f"{value:.4f}"
    assert "%.3f" % loss == "%.3f" % value  # noqa: UP031 (old-style formatting still used)
    assert float(loss) == pytest.approx(value) and loss.item() == pytest.approx(value)
    assert round(loss.item(), 2) == round(value, 2)


def test_print_of_gradients_shows_their_values():
    # PyTorch style: .grad after backward
    model = nn.Linear(3, 2)
    x = mx.array(np.arange(6, dtype=np.float32).reshape(2, 3))
    model(x).sum().backward()
    grad = model.weight.grad
    shown = _numbers(_printed(grad))
    np.testing.assert_allclose(shown, np.array(grad).ravel(), rtol=1e-5)
    np.testing.assert_allclose(np.array(grad), np.tile(x.sum(0), (2, 1)))
    assert _numbers(f"{model.bias.grad}") == [2.0, 2.0]
    # MLX style: the gradient function's result
    g = mx.grad(lambda w: (w**3).sum())(mx.array([1.0, 2.0]))
    assert _numbers(_printed(g)) == [3.0, 12.0]


def test_values_exist_as_soon_as_they_are_computed():
    """No evaluation step is needed: the value is there, and reading it twice agrees."""
    a = mx.array([1.0, 2.0, 3.0])
    b = mx.exp(a) * 2
    assert np.array(b).tolist() == pytest.approx((2 * np.exp([1.0, 2.0, 3.0])).tolist())
    mx.eval(b)  # MLX code that calls eval keeps working; it changes nothing
    assert b.tolist() == pytest.approx((2 * np.exp([1.0, 2.0, 3.0])).tolist())


LOOP = """
import json, os, sys
import numpy as np
import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

def rss_kib():
    with open("/proc/self/statm") as f:  # resident pages now (ru_maxrss would be the
        return int(f.read().split()[1]) * PAGE_KIB  # import's peak, which hides a leak)

style, steps, accumulate = sys.argv[1], int(sys.argv[2]), sys.argv[3]
mx.random.seed(0)
model = nn.Linear(4, 1)
X = mx.array(np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32))
y = mx.array(np.ones((8, 1), np.float32))
loss_fn = nn.MSELoss()
if style == "torch":
    opt = optim.SGD(model.parameters(), lr=0.01)
    def step():
        opt.zero_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        opt.step()
        return loss
else:
    opt = optim.SGD(learning_rate=0.01)
    loss_and_grad = nn.value_and_grad(model, lambda m, x, t: loss_fn(m(x), t))
    def step():
        loss, grads = loss_and_grad(model, X, y)
        opt.update(model, grads)
        return loss

total, peaks, peak = 0.0, [], 0
for i in range(steps):
    loss = step()
    total = total + (loss.item() if accumulate == "item" else loss)
    if i % 50 == 49:  # the peak of the resident memory, sampled every 50 steps
        peak = max(peak, rss_kib())
    if i % 1000 == 999:
        peaks.append(peak)  # the peak so far
print(json.dumps({"peaks": peaks, "total": float(total)}))
"""


def _run(style, steps, accumulate, tmp_path):
    proc = run_script(LOOP, style, str(steps), accumulate, tmp_path=tmp_path, timeout=120)
    return json.loads(check(proc))


LINUX = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc")


@LINUX
@pytest.mark.parametrize("style", ["torch", "mlx"])
def test_accumulating_loss_item_keeps_memory_flat_over_10000_steps(style, tmp_path):
    result = _run(style, 10_000, "item", tmp_path)
    peaks = result["peaks"]
    assert len(peaks) == 10 and np.isfinite(result["total"])
    growth = peaks[-1] - peaks[0]  # KiB between step 1,000 and step 10,000
    assert growth < 1024, peaks  # under 1 MiB, where one graph per step would add ~20 MiB


@LINUX
def test_the_measurement_sees_a_real_leak(tmp_path):
    """The control: keeping every step's graph (``total += loss``) shows up in the peak."""
    peaks = _run("torch", 3_000, "graph", tmp_path)["peaks"]
    assert peaks[-1] - peaks[0] > 2048, peaks  # KiB: over 2 MiB in 2,000 steps
