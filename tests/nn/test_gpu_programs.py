"""Real programs on the GPU, run on any machine against the strict CuPy stand-in.

With ``backend.use_strict_gpu()`` and ``mx.set_default_device(mx.gpu)``, arrays hold
``StrictArray``s, which refuse implicit conversion to NumPy and host arrays mixed in, as CuPy's
do. Each nn layer, loss and optimizer takes one training step there and must match the CPU step;
``mx.random`` draws the same numbers for the same key on both devices; weights are saved from and
loaded to the GPU; and the five seed programs run unchanged with ``CHAINRULE_DEVICE=gpu``.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule.core import backend
from chainrule.core.strict_backend import StrictArray
from chainrule.utils import tree_flatten, tree_unflatten

# these tests choose devices themselves: the CPU is the default while each runs (conftest.py)
pytestmark = pytest.mark.usefixtures("cpu_default_device")


ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT.parent / "shared" / "seed_programs"


def _leaves(tree) -> list:
    return [v for _, v in tree_flatten(tree) if isinstance(v, mx.array)]


def _on(device: str, fn):
    """``fn()`` with ``device`` ("cpu" or "gpu") the default device (the GPU: the strict one)."""
    if device == "cpu":
        return fn()
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        return fn()


def _train_step(make_model, make_input, loss_fn, make_opt=lambda: optim.SGD(0.1), train=True):
    def run():
        mx.random.seed(7)
        model = make_model()
        model.train(train)
        x = make_input()
        opt = make_opt()
        lg = nn.value_and_grad(model, lambda m, *a: loss_fn(m(*a)))
        args = x if isinstance(x, tuple) else (x,)
        losses = []
        for _ in range(2):
            loss, grads = lg(model, *args)
            opt.update(model, grads)
            losses.append(loss)
        params = _leaves(model.parameters())
        on_gpu = {type(p._data) is StrictArray for p in params + losses}
        return [v.item() for v in losses], [np.asarray(p) for p in params], on_gpu

    return run


def _check(run):
    want_loss, want_params, cpu_kinds = _on("cpu", run)
    got_loss, got_params, gpu_kinds = _on("gpu", run)
    assert cpu_kinds == {False} and gpu_kinds == {True}, (cpu_kinds, gpu_kinds)
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    for g, w in zip(got_params, want_params):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def _normal(*shape):
    return lambda: mx.random.normal(shape)


def _tokens():
    return mx.random.randint(0, 10, (4, 5))


LAYERS = {
    "linear-mlp": (
        lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)),
        _normal(4, 6),
    ),
    "activations": (
        lambda: nn.Sequential(
            nn.Linear(6, 8),
            nn.GELU(),
            nn.SiLU(),
            nn.Tanh(),
            nn.Softplus(),
            nn.LeakyReLU(),
            nn.ELU(),
            nn.Mish(),
            nn.PReLU(),
        ),
        _normal(4, 6),
    ),
    "layernorm-rmsnorm": (
        lambda: nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.RMSNorm(8)),
        _normal(4, 6),
    ),
    "batchnorm": (lambda: nn.Sequential(nn.Linear(6, 8), nn.BatchNorm(8)), _normal(4, 6)),
    "groupnorm": (lambda: nn.GroupNorm(2, 8), _normal(2, 3, 8)),
    "embedding": (lambda: nn.Embedding(10, 4), _tokens),
    "dropout": (lambda: nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.5)), _normal(4, 6)),
    "bilinear": (
        lambda: nn.Bilinear(3, 4, 2),
        lambda: (mx.random.normal((5, 3)), mx.random.normal((5, 4))),
    ),
    "multihead-attention": (
        lambda: nn.MultiHeadAttention(8, 2),
        lambda: (mx.random.normal((2, 5, 8)),) * 3,
    ),
    "transformer-encoder": (
        lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0),
        _normal(2, 5, 8),
    ),
    "rnn": (lambda: nn.RNN(4, 6), _normal(2, 5, 4)),
    "gru": (lambda: nn.GRU(4, 6), _normal(2, 5, 4)),
    "lstm": (lambda: nn.LSTM(4, 6), _normal(2, 5, 4)),
    "rope-sinusoidal": (
        lambda: nn.Sequential(nn.Linear(8, 8), nn.RoPE(8), nn.Linear(8, 8)),
        _normal(2, 5, 8),
    ),
    "upsample": (lambda: nn.Sequential(nn.Upsample(2.0), nn.Linear(3, 3)), _normal(1, 4, 4, 3)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), _normal(2, 6, 6, 3)),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3), _normal(2, 8, 3)),
    "maxpool-avgpool": (
        lambda: nn.Sequential(nn.Linear(3, 3), nn.MaxPool2d(2), nn.AvgPool2d(2)),
        _normal(2, 8, 8, 3),
    ),
}
LAYER_LEAKS: dict[str, str] = {}  # layer -> the leak that keeps it from the GPU (none now)


def _mean(out):
    out = out[0] if isinstance(out, tuple) else out
    return mx.mean(out * out) if out.dtype.kind == "f" else mx.mean(out.astype(mx.float32))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=LAYER_LEAKS[n])])
        if n in LAYER_LEAKS
        else n
        for n in LAYERS
    ],
)
def test_layer_training_step_on_gpu(name):
    make_model, make_input = LAYERS[name]
    _check(_train_step(make_model, make_input, _mean))


OPTIMIZERS = {
    "SGD-momentum": lambda: optim.SGD(0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
    "Adam": lambda: optim.Adam(0.01),
    "AdamW": lambda: optim.AdamW(0.01),
    "Adamax": lambda: optim.Adamax(0.01),
    "NAdam": lambda: optim.NAdam(0.01),
    "RAdam": lambda: optim.RAdam(0.01),
    "RMSprop": lambda: optim.RMSprop(0.01),
    "Adagrad": lambda: optim.Adagrad(0.1),
    "AdaDelta": lambda: optim.AdaDelta(1.0),
    "Adafactor": lambda: optim.Adafactor(0.01),
    "Lion": lambda: optim.Lion(0.01),
    "Rprop": lambda: optim.Rprop(0.01),
    "ASGD": lambda: optim.ASGD(0.01),
    "Muon": lambda: optim.Muon(0.01),
}


OPTIMIZER_LEAKS: dict[str, str] = {}  # optimizer -> the leak that keeps it from the GPU (none)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.xfail(strict=True, reason=OPTIMIZER_LEAKS[n])])
        if n in OPTIMIZER_LEAKS
        else n
        for n in OPTIMIZERS
    ],
)
def test_optimizer_step_on_gpu(name):
    mlp = lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))  # noqa: E731
    _check(_train_step(mlp, _normal(4, 6), _mean, OPTIMIZERS[name]))


def _targets():
    return mx.random.randint(0, 3, (4,))


LOSSES = {
    "cross_entropy": lambda y, t: nn.losses.cross_entropy(y, t, reduction="mean"),
    "cross_entropy-smoothing": lambda y, t: nn.losses.cross_entropy(
        y, t, label_smoothing=0.1, reduction="mean"
    ),
    "nll": lambda y, t: nn.losses.nll_loss(nn.log_softmax(y), t, reduction="mean"),
    "mse": lambda y, t: nn.losses.mse_loss(y, mx.sin(y) * 0.5),
    "l1": lambda y, t: nn.losses.l1_loss(y, mx.cos(y), reduction="mean"),
    "smooth_l1": lambda y, t: nn.losses.smooth_l1_loss(y, y * 0.3 + 1),
    "huber": lambda y, t: nn.losses.huber_loss(y, y * 0.3 + 1, reduction="mean"),
    "bce": lambda y, t: nn.losses.binary_cross_entropy(
        mx.sigmoid(y), mx.sigmoid(2 * y) > 0.5, with_logits=False, reduction="mean"
    ),
    "bce-logits": lambda y, t: nn.losses.binary_cross_entropy(
        y, mx.sigmoid(2 * y), reduction="mean"
    ),
    "kl_div": lambda y, t: nn.losses.kl_div_loss(
        nn.log_softmax(y), nn.log_softmax(y * 0.5), reduction="mean"
    ),
    "log_cosh": lambda y, t: nn.losses.log_cosh_loss(y, y * 0.3, reduction="mean"),
    "hinge": lambda y, t: nn.losses.hinge_loss(y, mx.sign(mx.cos(y)), reduction="mean"),
    "cosine": lambda y, t: nn.losses.cosine_similarity_loss(y, mx.cos(y), reduction="mean"),
    "gaussian_nll": lambda y, t: nn.losses.gaussian_nll_loss(
        y, mx.cos(y), mx.exp(y * 0.1), reduction="mean"
    ),
    "triplet": lambda y, t: nn.losses.triplet_loss(y, mx.cos(y), mx.sin(y), reduction="mean"),
    "margin_ranking": lambda y, t: nn.losses.margin_ranking_loss(
        y[:, 0], y[:, 1], mx.sign(y[:, 2]), reduction="mean"
    ),
}


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_step_on_gpu(name):
    fn = LOSSES[name]

    def make():
        model = nn.Linear(5, 3)
        t = _targets()
        model.t = None  # the targets travel with the input, not as a parameter
        return _Wrap(model, fn, t)

    _check(_train_step(make, _normal(4, 5), lambda out: out))


class _Wrap(nn.Module):
    def __init__(self, inner, fn, t) -> None:
        super().__init__()
        self.inner = inner
        self._fn = fn
        self._t = t

    def __call__(self, x):
        return self._fn(self.inner(x), self._t)


DRAWS = {
    "uniform": lambda k: mx.random.uniform(-1, 2, (3, 4), key=k),
    "normal": lambda k: mx.random.normal((3, 4), key=k, loc=1.0, scale=2.0),
    "normal-complex": lambda k: mx.random.normal((3,), dtype=mx.complex64, key=k),
    "randint": lambda k: mx.random.randint(0, 9, (5,), key=k),
    "bernoulli": lambda k: mx.random.bernoulli(0.3, (6,), key=k),
    "truncated_normal": lambda k: mx.random.truncated_normal(-1, 1, (4,), key=k),
    "gumbel": lambda k: mx.random.gumbel((4,), key=k),
    "categorical": lambda k: mx.random.categorical(mx.array([[0.1, 2.0, -1.0]] * 2), key=k),
    "permutation": lambda k: mx.random.permutation(7, key=k),
    "permutation-array": lambda k: mx.random.permutation(mx.arange(6), key=k),
    "laplace": lambda k: mx.random.laplace((4,), key=k),
    "multivariate_normal": lambda k: mx.random.multivariate_normal(
        mx.zeros((2,)), mx.eye(2), (3,), key=k
    ),
    "split": lambda k: mx.random.split(k, 3),
}


@pytest.mark.parametrize("name", list(DRAWS))
def test_random_draws_match_across_devices(name):
    fn = DRAWS[name]

    def run():
        out = fn(mx.random.key(42))
        return np.asarray(out), type(out._data)

    want, cpu_type = _on("cpu", run)
    got, gpu_type = _on("gpu", run)
    assert cpu_type is np.ndarray and gpu_type is StrictArray
    np.testing.assert_array_equal(got, want)


def test_global_generator_on_gpu_is_seeded():
    def run():
        mx.random.seed(5)
        return np.asarray(mx.random.normal((3,))), np.asarray(mx.random.uniform(shape=(2,)))

    want, got = _on("cpu", run), _on("gpu", run)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("ext", ["safetensors", "npz"])
def test_weights_saved_from_and_loaded_to_the_gpu(tmp_path, ext):
    path = str(tmp_path / f"w.{ext}")
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        model = nn.Linear(3, 2)
        model.save_weights(path)
        fresh = nn.Linear(3, 2)
        fresh.load_weights(path)
        assert type(fresh.weight._data) is StrictArray
        np.testing.assert_array_equal(np.asarray(fresh.weight), np.asarray(model.weight))
        mx.save(str(tmp_path / "a.npy"), model.weight)
        back = mx.load(str(tmp_path / "a.npy"))
        assert type(back._data) is StrictArray
        np.testing.assert_array_equal(np.asarray(back), np.asarray(model.weight))


def test_state_dicts_move_between_the_gpu_and_the_cpu():
    # load_state_dict copied a GPU value through NumPy (CuPy refuses): now an explicit copy to
    # the host, then onto each parameter's device (or, with assign=True, the loaded one's)
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        on_gpu = nn.Linear(3, 2)
        mx.set_default_device(mx.cpu)
        on_cpu = nn.Linear(3, 2)
        w = on_cpu.weight
        on_cpu.load_state_dict(on_gpu.state_dict())
        assert on_cpu.weight is w and type(w._data) is np.ndarray
        np.testing.assert_array_equal(np.asarray(w), np.asarray(on_gpu.weight))
        back = nn.Linear(3, 2)
        back.load_state_dict(on_gpu.state_dict(), assign=True)
        assert type(back.weight._data) is StrictArray and back.weight.requires_grad
        mx.set_default_device(mx.gpu)
        target = nn.Linear(3, 2)
        target.load_state_dict(on_cpu.state_dict())
        assert type(target.weight._data) is StrictArray
        np.testing.assert_array_equal(np.asarray(target.weight), np.asarray(on_gpu.weight))


def test_chainrule_device_without_a_gpu_is_a_clear_error():
    if backend.gpu() is not None:
        pytest.skip("a GPU backend is present")
    env = dict(os.environ, CHAINRULE_DEVICE="gpu", PYTHONPATH=str(ROOT))
    env.pop("CHAINRULE_TEST_BACKEND", None)
    r = subprocess.run(
        [sys.executable, "-c", "import chainrule.core"], env=env, capture_output=True, text=True
    )
    assert r.returncode != 0 and "CuPy is not installed" in r.stderr, r.stderr[-2000:]


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seed_programs is not here")
@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.glob("seed*.py")) or ["none"])
def test_seed_program_on_the_strict_gpu(seed):
    env = dict(os.environ, CHAINRULE_DEVICE="gpu", CHAINRULE_TEST_BACKEND="strict")
    env["PYTHONPATH"] = str(ROOT)
    probe = (
        "import runpy, sys, chainrule.core as mx\n"
        "from chainrule.core.strict_backend import StrictArray\n"
        "assert mx.default_device() == mx.gpu and type(mx.zeros(1)._data) is StrictArray\n"
        f"runpy.run_path({str(SEEDS / seed)!r}, run_name='__main__')\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(SEEDS),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "OK" in r.stdout


def test_dataloader_batches_land_on_the_gpu_once():
    from chainrule.data import DataLoader, TensorDataset

    x = np.arange(24, dtype=np.float32).reshape(12, 2)
    y = np.arange(12)
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        for loader in (
            DataLoader(list(zip(x, y)), batch_size=4, shuffle=True),
            DataLoader(TensorDataset(mx.array(x), mx.array(y)), batch_size=5),
        ):
            seen = 0
            for xb, yb in loader:
                assert type(xb._data) is StrictArray and type(yb._data) is StrictArray
                seen += xb.shape[0]
                assert (xb[:, 0] == 2 * yb.astype(mx.float32)).all().item()
            assert seen == 12


@pytest.mark.parametrize(
    "name",
    ["constant", "normal", "uniform", "identity", "glorot_normal", "glorot_uniform",
     "he_normal", "he_uniform", "sparse", "orthogonal"],
)  # fmt: skip
def test_initializers_make_arrays_on_the_gpu(name):
    make = getattr(nn.init, name)
    kwargs = {"constant": {"value": 0.5}, "sparse": {"sparsity": 0.5}}.get(name, {})

    def run():
        mx.random.seed(1)
        out = make(**kwargs)(mx.zeros((4, 4)))
        return np.asarray(out), type(out._data)

    want, cpu_type = _on("cpu", run)
    got, gpu_type = _on("gpu", run)
    assert cpu_type is np.ndarray and gpu_type is StrictArray
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_checkpoint_saved_from_and_resumed_on_the_gpu(tmp_path):
    from chainrule.checkpoint import load_checkpoint, save_checkpoint

    path = str(tmp_path / "run.ckpt")
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        model = nn.Linear(3, 2)
        opt = optim.Adam(0.01)
        lg = nn.value_and_grad(model, lambda m, x: mx.mean(m(x) ** 2))
        x = mx.random.normal((4, 3))
        _, g = lg(model, x)
        opt.update(model, g)
        save_checkpoint(path, model, opt, epoch=1)
        model2, opt2 = nn.Linear(3, 2), optim.Adam(0.01)
        _, g2 = lg(model2, x)
        opt2.update(model2, g2)  # builds the state the checkpoint replaces
        load_checkpoint(path, model2, opt2)
        for a, b in zip(_leaves(model.parameters()), _leaves(model2.parameters())):
            assert type(b._data) is StrictArray
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        _, g3 = lg(model2, x)
        opt2.update(model2, g3)  # resumes on the GPU: the state is there too
        moments = [v for v in _leaves(opt2.state) if v.ndim]  # (the step count is a scalar)
        assert moments and all(type(v._data) is StrictArray for v in moments)


def test_causal_mask_and_masked_encoder_on_the_gpu():
    """MLX's ``create_additive_causal_mask`` is made on the default device, so a masked
    transformer runs on the GPU and gives the CPU's numbers."""
    mask_cpu = nn.MultiHeadAttention.create_additive_causal_mask(5)
    mx.random.seed(3)
    layer = nn.TransformerEncoder(2, 8, 2)
    x = mx.random.normal((2, 5, 8))
    want = np.asarray(layer(x, mask_cpu))
    with backend.use_strict_gpu():
        mx.set_default_device(mx.gpu)
        try:
            mask = nn.MultiHeadAttention.create_additive_causal_mask(5)
            assert type(mask._data) is StrictArray
            layer.update(
                tree_unflatten([(k, mx.array(np.asarray(v))) for k, v in tree_flatten(layer)])
            )
            got = layer(mx.array(np.asarray(x)), mask)
            assert type(got._data) is StrictArray
            np.testing.assert_allclose(got._data.get(), want, rtol=1e-5, atol=1e-6)
        finally:
            mx.set_default_device(mx.cpu)
