"""PyTorch's CPU random numbers, draw for draw: ``chainrule.torch`` against PyTorch itself.

After the same ``manual_seed`` every draw (factories, in-place samplers, layer initialisation,
dropout, shuffling) must be PyTorch's exactly, and the streams stay in step afterwards.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule.core as mx
import chainrule.torch as ct
from chainrule.core.torch_generator import CPUGenerator

torch = pytest.importorskip("torch")

# PyTorch's float32 normal and arange kernels are its AVX2 ones (also on AVX-512 CPUs, where it
# keeps them); without AVX2 it computes them otherwise, and these comparisons cannot hold.
if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
    pytest.skip("PyTorch runs without its AVX2 kernels here", allow_module_level=True)


def _same(ours, theirs) -> None:
    a, b = np.asarray(ours), theirs.detach().numpy()
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _seeded(seed: int = 0) -> None:
    torch.manual_seed(seed)
    ct.manual_seed(seed)


DRAWS = {
    "rand": lambda t: t.rand(3, 5),
    "rand-f64": lambda t: t.rand(7, dtype=t.float64),
    "randn-small": lambda t: t.randn(5),  # the cached second Box-Muller value...
    "randn-small-again": lambda t: (t.randn(3), t.randn(3))[1],  # ...carries over
    "randn-16": lambda t: t.randn(4, 4),
    "randn-tail": lambda t: t.randn(1000 + 7),  # the last 16 redrawn
    "randn-f64": lambda t: t.randn(37, dtype=t.float64),
    "normal_": lambda t: t.empty(40).normal_(2.0, 3.0),
    "normal_-small": lambda t: t.empty(7).normal_(0.3, 2.7),
    "normal_-f64": lambda t: t.empty(40, dtype=t.float64).normal_(-1.3, 0.7),
    "normal_-f64-small": lambda t: t.empty(5, dtype=t.float64).normal_(-1.3, 0.7),
    "normal-sized": lambda t: t.normal(1.5, 0.5, (3, 9)),
    "uniform_": lambda t: t.empty(33).uniform_(-0.1, 0.3),
    "uniform_-f64": lambda t: t.empty(33, dtype=t.float64).uniform_(-2.0, 5.0),
    "randint": lambda t: t.randint(-3, 9, (50,)),
    "randint-wide": lambda t: t.randint(0, 2**40, (6,)),
    "randint-int32": lambda t: t.randint(0, 7, (4, 3), dtype=t.int32),
    "randperm": lambda t: t.randperm(1000),
    "bernoulli_": lambda t: t.empty(64).bernoulli_(0.3),
    "bernoulli-tensor": lambda t: t.bernoulli(t.full((5, 7), 0.6)),
    "rand_like": lambda t: t.rand_like(t.zeros(2, 3, dtype=t.float64)),
    "exponential_": lambda t: t.empty(20, dtype=t.float64).exponential_(2.0),
    "exponential_-f32": lambda t: t.empty(20).exponential_(0.5),
    "geometric_": lambda t: t.empty(20, dtype=t.float64).geometric_(0.3),
    "cauchy_": lambda t: t.empty(20, dtype=t.float64).cauchy_(1.0, 2.0),
    "log_normal_": lambda t: t.empty(20, dtype=t.float64).log_normal_(),
    "log_normal_-f32": lambda t: t.empty(9).log_normal_(-0.3, 0.8),
    "geometric_-f32": lambda t: t.empty(30).geometric_(0.05),
    "cauchy_-f32": lambda t: t.empty(30).cauchy_(-1.0, 0.5),
    "random_": lambda t: t.empty(20, dtype=t.int64).random_(),
    "random_-to": lambda t: t.empty(20).random_(10),
    "random_-from-to": lambda t: t.empty(20, dtype=t.int32).random_(-5, 5),
    "rrelu": lambda t: t.nn.functional.rrelu(t.linspace(-2, 2, 40), training=True),
    "multinomial-one": lambda t: t.multinomial(t.linspace(0.1, 1, 12).reshape(3, 4), 1),
    "multinomial-replacement": lambda t: t.multinomial(
        t.linspace(0.1, 1, 12).reshape(3, 4), 9, True
    ),
    "multinomial-without": lambda t: t.multinomial(t.linspace(0.1, 1, 12).reshape(3, 4), 3),
    "fractional_max_pool2d": lambda t: t.nn.functional.fractional_max_pool2d(
        t.arange(128.0).reshape(2, 1, 8, 8), 2, output_size=(4, 4)
    ),
}


DISTRIBUTIONS = {
    "Normal": lambda d, t: d.Normal(t.tensor([0.0, 1.0]), t.tensor([1.0, 2.0])).rsample((5,)),
    "Uniform": lambda d, t: d.Uniform(t.tensor([0.0]), t.tensor([3.0])).sample((7,)),
    "Exponential": lambda d, t: d.Exponential(t.tensor([1.5])).sample((6,)),
    "Bernoulli": lambda d, t: d.Bernoulli(t.tensor([0.3, 0.7])).sample((10,)),
    "MultivariateNormal": lambda d, t: d.MultivariateNormal(t.zeros(3), t.eye(3)).sample((4,)),
    "Categorical": lambda d, t: d.Categorical(t.linspace(0.1, 1, 12).reshape(3, 4)).sample((2, 5)),
}


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_distributions_sample_as_pytorch(name: str) -> None:
    _seeded(8)
    _same(
        DISTRIBUTIONS[name](ct.distributions, ct), DISTRIBUTIONS[name](torch.distributions, torch)
    )


def test_samplers_with_a_transcendental_step_agree_to_the_last_place() -> None:
    """Laplace samples and Gumbel noise take the same draws; ``log1p``/``log`` may round
    their last bit differently."""
    _seeded(9)
    a = ct.distributions.Laplace(ct.tensor([0.5]), ct.tensor([2.0])).sample((50,))
    b = torch.distributions.Laplace(torch.tensor([0.5]), torch.tensor([2.0])).sample((50,))
    np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-6)
    x = np.linspace(-1, 1, 24, dtype=np.float32).reshape(4, 6)
    a = ct.nn.functional.gumbel_softmax(ct.tensor(x), tau=0.7)
    b = torch.nn.functional.gumbel_softmax(torch.tensor(x), tau=0.7)
    np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-5, atol=1e-7)
    _same(ct.rand(3), torch.rand(3))


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_draws_are_pytorchs(name: str) -> None:
    """Each factory or sampler gives PyTorch's values, dtype and shape after the same seed,
    and leaves the stream where PyTorch leaves it (the next draw agrees too)."""
    for seed in (0, 2**40 + 3):
        _seeded(seed)
        _same(DRAWS[name](ct), DRAWS[name](torch))
        _same(ct.rand(4), torch.rand(4))


def test_a_generator_is_pytorchs_and_starts_from_pytorchs_seed() -> None:
    """``Generator()`` starts where PyTorch's does (67280421310721) and reseeds alike; the
    default generator is untouched by draws from another one."""
    g, h = ct.Generator(), torch.Generator()
    assert g.initial_seed() == h.initial_seed() == 67280421310721
    _same(ct.randn(20, generator=g), torch.randn(20, generator=h))
    g.manual_seed(7)
    h.manual_seed(7)
    _same(ct.randint(0, 10, (9,), generator=g), torch.randint(0, 10, (9,), generator=h))
    state = g.get_state()
    first = ct.randperm(30, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(np.asarray(ct.randperm(30, generator=g)), np.asarray(first))


def test_seeds_modulo_two_to_the_64_and_initial_seed() -> None:
    for seed in (0, 5, 2**33 + 1, -1):
        torch.manual_seed(seed)
        ct.manual_seed(seed)
        assert ct.initial_seed() == torch.initial_seed()
        _same(ct.rand(3), torch.rand(3))


def test_mx_random_seed_and_state_carry_the_pytorch_stream() -> None:
    """``mx.random.seed`` reseeds the PyTorch stream too, and ``mx.random.get_state`` /
    ``set_state`` (what checkpoints save) restore it, cached normal sample included."""
    mx.random.seed(11)
    torch.manual_seed(11)
    _same(ct.randn(3), torch.randn(3))
    state = mx.random.get_state()
    after = (ct.randn(3), ct.rand(2), mx.random.uniform(shape=(2,)))
    mx.random.set_state(state)
    again = (ct.randn(3), ct.rand(2), mx.random.uniform(shape=(2,)))
    for a, b in zip(after, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


LAYERS = {
    "Linear": lambda t: t.nn.Linear(784, 128),
    "Linear-no-bias": lambda t: t.nn.Linear(5, 3, bias=False),
    "Conv2d": lambda t: t.nn.Conv2d(3, 16, 3),
    "Conv1d-groups": lambda t: t.nn.Conv1d(4, 6, 5, groups=2),
    "ConvTranspose2d": lambda t: t.nn.ConvTranspose2d(4, 6, 3),
    "Embedding": lambda t: t.nn.Embedding(100, 32, padding_idx=0),
    "LSTM": lambda t: t.nn.LSTM(10, 20, num_layers=2),
    "GRU-bidirectional": lambda t: t.nn.GRU(10, 20, bidirectional=True),
    "LSTMCell": lambda t: t.nn.LSTMCell(5, 7),
    "Bilinear": lambda t: t.nn.Bilinear(3, 4, 5),
    "MultiheadAttention": lambda t: t.nn.MultiheadAttention(16, 4, add_bias_kv=True),
    "Transformer": lambda t: t.nn.Transformer(16, 4, 1, 1, 32),
    "GroupNorm": lambda t: t.nn.GroupNorm(2, 4),
    "mlp": lambda t: t.nn.Sequential(t.nn.Linear(4, 8), t.nn.ReLU(), t.nn.Linear(8, 2)),
}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_initialise_as_pytorch(name: str) -> None:
    """A layer built after ``manual_seed`` has PyTorch's parameters, in PyTorch's order."""
    _seeded(3)
    theirs = LAYERS[name](torch).state_dict()
    ours = LAYERS[name](ct).state_dict()
    assert list(ours) == list(theirs)
    for k in theirs:
        np.testing.assert_array_equal(np.asarray(ours[k]), theirs[k].numpy(), err_msg=k)


INITS = {
    "uniform_": lambda t, w: t.nn.init.uniform_(w, -0.2, 0.7),
    "normal_": lambda t, w: t.nn.init.normal_(w, 0.5, 2.0),
    "xavier_uniform_": lambda t, w: t.nn.init.xavier_uniform_(w),
    "xavier_normal_": lambda t, w: t.nn.init.xavier_normal_(w),
    "kaiming_uniform_": lambda t, w: t.nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "kaiming_normal_": lambda t, w: t.nn.init.kaiming_normal_(w, mode="fan_out"),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_init_functions_draw_as_pytorch(name: str) -> None:
    _seeded(4)
    ours = INITS[name](ct, ct.zeros(6, 10))
    theirs = INITS[name](torch, torch.zeros(6, 10))
    _same(ours, theirs)


@pytest.mark.parametrize("cut", [(0.1, 0.5, -0.3, 0.9), (0.0, 1.0, 2.0, 2.5)])
def test_trunc_normal_follows_pytorchs_method(cut: tuple) -> None:
    """PyTorch 2.13's two methods (normal draws redrawn outside a wide cut; uniform proposals
    accepted against the density for a narrow one): PyTorch's values, inside the cut."""
    _seeded(5)
    ours = np.asarray(ct.nn.init.trunc_normal_(ct.zeros(200), *cut))
    theirs = torch.nn.init.trunc_normal_(torch.zeros(200), *cut).numpy()
    np.testing.assert_array_equal(ours, theirs)
    assert ours.min() >= cut[2] and ours.max() <= cut[3]
    _same(ct.rand(2), torch.rand(2))


def _amd() -> bool:
    try:
        return "AuthenticAMD" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not _amd(),
    reason="PyTorch draws scalar-probability Bernoulli masks from MKL on Intel CPUs",
)
@pytest.mark.parametrize("p", [0.5, 0.1])
def test_dropout_masks_are_pytorchs(p: float) -> None:
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    _seeded(6)
    _same(
        ct.nn.functional.dropout(ct.tensor(x), p), torch.nn.functional.dropout(torch.tensor(x), p)
    )
    _same(ct.nn.Dropout2d(p)(ct.tensor(x)), torch.nn.Dropout2d(p)(torch.tensor(x)))


def test_shuffling_loaders_and_splits_draw_as_pytorch() -> None:
    """``DataLoader(shuffle=True)`` (its base seed, then the sampler's own stream per epoch),
    with or without a ``generator``, ``RandomSampler`` with replacement, ``random_split`` and
    ``WeightedRandomSampler`` give PyTorch's orders, and leave the default stream where
    PyTorch leaves it."""
    from torch.utils import data as tdata

    from chainrule.torch.utils import data as cdata

    x = np.arange(100, dtype=np.float32).reshape(50, 2)

    def epochs(lib, data, **kw):
        loader = data.DataLoader(data.TensorDataset(lib.tensor(x)), batch_size=8, **kw)
        return [np.asarray(b[0]) for _ in range(2) for b in loader]

    _seeded(0)
    for a, b in zip(epochs(ct, cdata, shuffle=True), epochs(torch, tdata, shuffle=True)):
        np.testing.assert_array_equal(a, b)
    _same(ct.rand(3), torch.rand(3))
    ours = epochs(ct, cdata, shuffle=True, generator=ct.Generator().manual_seed(3))
    theirs = epochs(torch, tdata, shuffle=True, generator=torch.Generator().manual_seed(3))
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    _seeded(2)
    assert list(cdata.RandomSampler(list(range(10)), replacement=True, num_samples=40)) == list(
        tdata.RandomSampler(range(10), replacement=True, num_samples=40)
    )
    split = [list(s.indices) for s in cdata.random_split(list(range(10)), [0.3, 0.7])]
    assert split == [list(s.indices) for s in tdata.random_split(range(10), [0.3, 0.7])]
    w = [0.1, 0.9, 0.4, 0.7, 3.0, 0.2]
    for n, replacement in ((20, True), (4, False)):
        ours = list(cdata.WeightedRandomSampler(w, n, replacement))
        assert ours == list(tdata.WeightedRandomSampler(w, n, replacement))
    _same(ct.rand(3), torch.rand(3))


def test_the_cephes_kernels_match_the_c_library_closely() -> None:
    """The reproduced AVX2 ``log`` and ``sincos`` (what PyTorch's float32 ``normal_`` uses)
    are Cephes' single-precision functions: within 2 ulp of the exact values."""
    from chainrule.core.torch_generator import _log_ps, _sincos_ps

    u = np.linspace(1e-6, 1.0, 10001, dtype=np.float32)
    np.testing.assert_allclose(_log_ps(u), np.log(u.astype(np.float64)), rtol=3e-7, atol=1e-7)
    theta = np.linspace(0.0, 2 * np.pi, 10001).astype(np.float32)
    s, c = _sincos_ps(theta)
    np.testing.assert_allclose(s, np.sin(theta.astype(np.float64)), atol=3e-7)
    np.testing.assert_allclose(c, np.cos(theta.astype(np.float64)), atol=3e-7)


def test_stream_state_is_plain_and_restorable() -> None:
    g = CPUGenerator(9)
    g.normal((3,), np.float32)  # leaves a cached sample
    st = g.state
    assert st == CPUGenerator(9).state or st["next_double"] is not None
    a = g.normal((5,), np.float64)
    g.state = st
    np.testing.assert_array_equal(g.normal((5,), np.float64), a)


def _train(lib) -> list[float]:
    """A seeded PyTorch program: random data, an MLP with dropout, a shuffling loader, SGD."""
    lib.manual_seed(0)
    x, y = lib.randn(200, 20), lib.randint(0, 3, (200,))
    data = lib.utils.data
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=32, shuffle=True)
    nn = lib.nn
    model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


@pytest.mark.skipif(not _amd(), reason="dropout masks: PyTorch uses MKL's stream on Intel CPUs")
def test_a_seeded_training_program_gives_pytorchs_losses() -> None:
    """Data, initial weights, dropout masks and batch order all PyTorch's: the losses agree
    to float32 rounding of the products (not bit for bit: BLAS sums differ)."""
    ours, theirs = _train(ct), _train(torch)
    assert len(ours) == len(theirs) == 21
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)


SEED002 = Path(__file__).resolve().parents[2].parent / "shared" / "seed_programs"


@pytest.mark.skipif(not SEED002.is_dir(), reason="../shared/seed_programs is not here")
def test_the_seed_program_prints_pytorchs_losses(tmp_path: Path) -> None:
    """seed002 (a PyTorch training loop: randn data, Linear layers, a shuffling DataLoader,
    SGD) prints the same losses under chainrule.torch as under PyTorch."""
    text = (SEED002 / "seed002_pytorch_loop.py").read_text()
    (tmp_path / "ours.py").write_text(text)
    (tmp_path / "theirs.py").write_text(text.replace("chainrule.torch", "torch"))
    outs = []
    for name in ("ours.py", "theirs.py"):
        run = subprocess.run(
            [sys.executable, str(tmp_path / name)], capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, run.stderr[-2000:]
        outs.append([ln for ln in run.stdout.splitlines() if ln.startswith("Epoch")])
    assert outs[0] == outs[1] and len(outs[0]) == 5


@pytest.mark.parametrize("args", [(-2, 2, 40), (-3.14159, 3.14159, 2000), (0, 1, 11), (5, -1, 17)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_linspace_values_are_pytorchs(args: tuple, dtype: str) -> None:
    """``linspace`` as PyTorch's kernel computes it (two halves, fused multiply-adds): the
    inputs of a seeded program (``x = torch.linspace(-pi, pi, 2000)``) are PyTorch's to the bit."""
    _same(
        ct.linspace(*args, dtype=getattr(ct, dtype)),
        torch.linspace(*args, dtype=getattr(torch, dtype)),
    )


@pytest.mark.parametrize("args", [(0, 5, 0.3), (-5, 5, 0.1), (10, 0, -0.3), (-7, 3000, 0.037)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float_arange_values_are_pytorchs(args: tuple, dtype: str) -> None:
    """``arange`` with a fractional step as PyTorch's vectorised kernel computes it, its
    chunks split between the threads as ATen's (the last case has 81,000 values)."""
    before = (ct.get_num_threads(), torch.get_num_threads())
    try:
        for threads in (1, 2):
            ct.set_num_threads(threads)
            torch.set_num_threads(threads)
            _same(
                ct.arange(*args, dtype=getattr(ct, dtype)),
                torch.arange(*args, dtype=getattr(torch, dtype)),
            )
    finally:
        ct.set_num_threads(before[0])
        torch.set_num_threads(before[1])
