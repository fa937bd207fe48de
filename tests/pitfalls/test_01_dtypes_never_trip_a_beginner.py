"""Pitfall 1: dtypes never trip a beginner.

The complaint (PyTorch's "expected scalar type Float but found Double", "expected Long"):
NumPy makes float64 arrays and int64 labels, pandas too, Python lists hold ints; feeding them
to float32 layers, losses or optimizers fails or silently changes the model's dtype. In
chainrule they are converted as MLX converts them (float64 NumPy data becomes float32, Python
numbers are weakly typed), so they just work and the model stays float32. A float64 array
asked for explicitly stays float64 end to end: model, loss, gradient, optimizer state.
"""

import numpy as np
import pytest
from pitfall_helpers import LOSSES, binary, labels, values

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
import chainrule.torch as torch
from chainrule import load_checkpoint, save_checkpoint
from chainrule.train import fit
from chainrule.utils import tree_flatten

OPTIMIZERS = [
    name
    for name in optim.__all__
    if isinstance(getattr(optim, name), type)
    and issubclass(getattr(optim, name), optim.Optimizer)
    and getattr(optim, name) not in (optim.Optimizer, optim.MultiOptimizer)
]


def _data(n=32, d=5, seed=0):
    """What NumPy gives a beginner: float64 features, int64 labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    assert X.dtype == np.float64 and y.dtype == np.int64
    return X, y


def _params(model):
    return dict(tree_flatten(model.parameters()))


def _dtypes(tree):
    return {np.asarray(v).dtype for _, v in tree_flatten(tree) if hasattr(v, "dtype")}


FEATURES = {
    "numpy float64": lambda X: X,
    "python lists": lambda X: X.tolist(),
    "numpy int64": lambda X: np.round(X * 3).astype(np.int64),
    "chainrule.torch.tensor (float64)": lambda X: torch.tensor(X),
}
TARGETS = {
    "numpy int64": lambda y: y,
    "python list of ints": lambda y: y.tolist(),
    "numpy int32": lambda y: y.astype(np.int32),
}


@pytest.mark.parametrize("features", FEATURES, ids=str)
@pytest.mark.parametrize("targets", TARGETS, ids=str)
def test_numpy_and_list_data_train_a_float32_model_in_the_pytorch_style(features, targets):
    X, y = _data()
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    xb, yb = FEATURES[features](X), TARGETS[targets](y)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.dtype == mx.float32 for p in model.parameters())
    assert all(p.grad.dtype == mx.float32 for p in model.parameters())


@pytest.mark.parametrize("features", FEATURES, ids=str)
def test_numpy_and_list_data_train_a_float32_model_in_the_mlx_style(features):
    X, y = _data()
    mx.random.seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = optim.SGD(learning_rate=0.1)
    loss_and_grad = nn.value_and_grad(
        model, lambda m, x, t: nn.losses.binary_cross_entropy(m(x)[:, 0], t)
    )
    xb = FEATURES[features](X)
    losses = []
    for _ in range(20):
        loss, grads = loss_and_grad(model, xb, y)  # int64 0/1 targets
        opt.update(model, grads)
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert _dtypes(model.parameters()) == {np.dtype(np.float32)}
    assert _dtypes(grads) == {np.dtype(np.float32)}


def test_fit_takes_numpy_float64_and_integer_labels_as_they_come():
    X, y = _data(n=64)
    mx.random.seed(1)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    history = fit(
        model,
        optim.Adam(model.parameters(), lr=0.05),
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=(X.tolist(), y.tolist()),
        epochs=5,
        progress=False,
    )
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.8
    assert _dtypes(model.parameters()) == {np.dtype(np.float32)}


@pytest.mark.parametrize("loss", LOSSES, ids=lambda loss: loss.name)
def test_every_loss_takes_numpy_float64_list_and_integer_targets(loss):
    """float32 predictions against the targets a beginner has: same value, float32 result."""
    if loss.kind == "index":
        first = mx.array(values((6, 3)))
        reference = mx.array(labels((6,)).astype(np.int32))
        variants = [labels((6,)), labels((6,)).tolist(), labels((6,)).astype(np.uint8)]
    else:
        first = mx.array(values((6,)))
        if loss.name in ("hinge_loss", "margin_ranking_loss"):
            raw = binary((6,)) * 2 - 1  # -1 / +1
        elif "BCE" in loss.name or "binary" in loss.name:
            raw = binary((6,))
        else:
            raw = values((6,), seed=3, dtype=np.float64)
        reference = mx.array(raw.astype(np.float32))
        variants = [raw, raw.tolist()]
        if raw.dtype.kind == "i":
            variants.append(raw.astype(np.int32))
    extra = [mx.array(values((6,), seed=5))] * (loss.nargs - 2)
    if loss.name == "margin_ranking_loss":  # (inputs1, inputs2, targets)
        expected = loss.call(first, extra[0], reference)
        results = [loss.call(first, extra[0], v) for v in variants]
    else:
        expected = loss.call(first, reference, *extra)
        results = [loss.call(first, v, *extra) for v in variants]
    assert expected.dtype == mx.float32
    for got in results:
        assert got.dtype == mx.float32
        np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_every_optimizer_keeps_a_float32_model_float32_on_float64_data(name, style):
    _check_optimizer_keeps(name, style, mx.float32, lambda X: X)  # NumPy float64 data


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_every_optimizer_keeps_a_float64_model_float64(name, style):
    _check_optimizer_keeps(name, style, mx.float64, lambda X: mx.array(X, dtype=mx.float64))


def _check_optimizer_keeps(name, style, dtype, convert):
    X, _ = _data(n=8, d=3)
    mx.random.seed(0)
    model = nn.Linear(3, 2)
    model.set_dtype(dtype)
    cls = getattr(optim, name)
    x = convert(X)
    if style == "mlx":
        opt = cls(learning_rate=0.01)
        loss_and_grad = nn.value_and_grad(model, lambda m, x: mx.mean(m(x) ** 2))
        for _ in range(3):
            loss, grads = loss_and_grad(model, x)
            opt.update(model, grads)
        # per-parameter state (the scalar hyper-parameters such as learning_rate are float32
        # arrays in MLX's state too, whatever the model's dtype)
        state = {k: v for k, v in opt.state.items() if k in ("weight", "bias")}
        assert _dtypes(grads) == {dtype.np}
    else:
        opt = cls([model.weight] if name == "Muon" else model.parameters(), lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            loss = mx.mean(model(x) ** 2)
            loss.backward()
            opt.step()
        state = opt.state_dict()["state"]
        assert model.weight.grad.dtype == dtype
    assert loss.dtype == dtype
    assert _dtypes(model.parameters()) == {dtype.np}
    floats = {d for d in _dtypes(state) if d.kind == "f"}
    assert floats <= {dtype.np}, f"{name} keeps optimizer state in {floats}"


def test_explicit_float64_stays_float64_end_to_end_with_float64_precision(tmp_path):
    """Least squares by gradient descent, in float64, against the same steps in NumPy."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 1e-9 * rng.normal(size=16)
    model = nn.Linear(3, 1)
    model.set_dtype(mx.float64)
    w = np.array(model.weight, dtype=np.float64).copy()
    b = np.array(model.bias, dtype=np.float64).copy()
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.MSELoss()
    x64, y64 = mx.array(X, dtype=mx.float64), mx.array(y[:, None], dtype=mx.float64)
    for _ in range(50):
        opt.zero_grad()
        out = model(x64)
        loss = loss_fn(out, y64)
        loss.backward()
        assert out.dtype == loss.dtype == model.weight.grad.dtype == mx.float64
        opt.step()
        # the same step in NumPy float64
        r = X @ w.T + b - y[:, None]
        gw = 2 * (r.T @ X) / r.size
        gb = 2 * r.sum(0) / r.size
        w, b = w - 0.1 * gw, b - 0.1 * gb
    assert model.weight.dtype == model.bias.dtype == mx.float64
    # float32 storage anywhere would leave errors near 1e-7; float64 agrees to ~1e-15
    np.testing.assert_allclose(np.array(model.weight), w, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.array(model.bias), b, rtol=1e-12, atol=1e-14)
    # float32 inputs meeting a float64 model promote to float64 (nothing is narrowed)
    assert model(mx.array(X.astype(np.float32))).dtype == mx.float64
    # and the dtype survives a checkpoint
    save_checkpoint(tmp_path / "c.ckpt", model, opt)
    other = nn.Linear(3, 1)
    other.set_dtype(mx.float64)
    load_checkpoint(tmp_path / "c.ckpt", other, optim.SGD(other.parameters(), lr=0.1))
    assert other.weight.dtype == mx.float64
    np.testing.assert_array_equal(np.array(other.weight), np.array(model.weight))


def test_float64_fit_keeps_float64():
    X, y = _data(n=32, d=3)
    model = nn.Linear(3, 2)
    model.set_dtype(mx.float64)
    fit(
        model,
        optim.Adam(learning_rate=0.01),
        nn.losses.cross_entropy,
        (mx.array(X, dtype=mx.float64), y),
        epochs=2,
        progress=False,
    )
    assert _dtypes(model.parameters()) == {np.dtype(np.float64)}


def test_a_float32_model_meeting_float64_arrays_neither_fails_nor_changes_dtype():
    """PyTorch raises "expected Float but found Double"; here the parameters stay float32."""
    model = nn.Linear(3, 1)
    x = mx.array(np.ones((4, 3)), dtype=mx.float64)
    out = model(x)
    assert out.dtype == mx.float64  # promotion, as in MLX: nothing is narrowed silently
    loss = nn.MSELoss()(out, np.zeros((4, 1)))
    loss.backward()
    assert model.weight.grad.dtype == mx.float32 and model.bias.grad.dtype == mx.float32
    expected = np.array(mx.grad(lambda w: mx.mean((x @ w.T + model.bias) ** 2))(model.weight))
    np.testing.assert_allclose(np.array(model.weight.grad), expected, rtol=1e-6)
