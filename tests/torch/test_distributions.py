"""torch.distributions against real PyTorch: densities, entropies, moments, gradients, KL,
shapes, argument validation, and sampling statistics from seeded draws."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch
import chainrule.torch.distributions as D

R = np.random.default_rng(0)
POS = np.array([0.7, 1.3, 2.5], dtype=np.float64)
REAL = np.array([-0.4, 0.2, 1.7], dtype=np.float64)
PROB = np.array([0.2, 0.55, 0.9], dtype=np.float64)
SIMPLEX = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]], dtype=np.float64)
COV = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 0.5]], dtype=np.float64)

# name: (constructor args (arrays are parameters, differentiated), values to score)
CASES = {
    "Normal": ((REAL, POS), REAL * 2),
    "LogNormal": ((REAL, POS), POS),
    "Laplace": ((REAL, POS), REAL + 0.3),
    "Uniform": ((REAL - 1, REAL + 2), REAL),
    "Exponential": ((POS,), POS * 0.5),
    "Gamma": ((POS, POS[::-1].copy()), POS * 0.8),
    "Beta": ((POS, POS[::-1].copy()), PROB),
    "Bernoulli": ((PROB,), np.array([0.0, 1.0, 1.0])),
    "Poisson": ((POS * 2,), np.array([0.0, 2.0, 7.0])),
    "Binomial": ((5.0, PROB), np.array([0.0, 3.0, 5.0])),
    "Categorical": ((SIMPLEX,), np.array([2.0, 0.0])),
    "OneHotCategorical": ((SIMPLEX,), np.eye(3)[[2, 0]]),
    "Dirichlet": ((POS * np.ones((2, 3)),), SIMPLEX),
    "MultivariateNormal": ((REAL, COV), np.stack([REAL, POS])),
    "Cauchy": ((REAL, POS), REAL * 3),
    "HalfNormal": ((POS,), POS * 0.7),
    "StudentT": ((POS * 2, REAL, POS), REAL * 2),
    "Chi2": ((POS * 2,), POS),
    "Gumbel": ((REAL, POS), REAL + 0.5),
    "Geometric": ((PROB,), np.array([0.0, 2.0, 5.0])),
    "Multinomial": ((4, SIMPLEX), np.array([[1.0, 1.0, 2.0], [4.0, 0.0, 0.0]])),
}
NO_ENTROPY = {"Poisson"}
DISCRETE_VALUE = {"Categorical"}


def _make(lib, name, args, grad=True):
    made = []
    for a in args:
        if isinstance(a, np.ndarray):
            t = lib.tensor(a, requires_grad=grad)
            made.append(t)
        else:
            made.append(a)
    params = [m for m in made if hasattr(m, "grad")]
    return getattr(lib.distributions, name)(*made), params


def _np(t):
    return np.array(t.detach()) if hasattr(t, "detach") else np.array(t)


def _cmp(a, b, rtol=1e-7, atol=1e-9):
    assert tuple(a.shape) == tuple(b.shape), (a.shape, b.shape)
    np.testing.assert_allclose(_np(a), b.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_pytorch(name):
    torch_ref = pytest.importorskip("torch")
    args, values = CASES[name]
    d, params = _make(torch, name, args)
    rd, rparams = _make(torch_ref, name, args)
    assert tuple(d.batch_shape) == tuple(rd.batch_shape)
    assert tuple(d.event_shape) == tuple(rd.event_shape)
    dtype = torch.int64 if name in DISCRETE_VALUE else torch.float64
    rdtype = torch_ref.int64 if name in DISCRETE_VALUE else torch_ref.float64
    v, rv = torch.tensor(values, dtype=dtype), torch_ref.tensor(values, dtype=rdtype)
    lp, rlp = d.log_prob(v), rd.log_prob(rv)
    _cmp(lp, rlp)
    for attr in ("mean", "variance", "stddev"):
        a, b = getattr(d, attr), getattr(rd, attr)
        if name in ("Categorical", "Cauchy"):
            assert np.array_equal(_np(a), b.detach().numpy(), equal_nan=True)
            continue
        _cmp(a, b)
    total, rtotal = lp.sum(), rlp.sum()
    if name not in NO_ENTROPY:
        e, re = d.entropy(), rd.entropy()
        _cmp(e, re)
        total, rtotal = total + e.sum(), rtotal + re.sum()
    total.backward()
    rtotal.backward()
    for p, rp in zip(params, rparams):
        _cmp(p.grad, rp.grad, rtol=1e-6, atol=1e-8)


KL_PAIRS = [
    ("Normal", (REAL, POS), (REAL[::-1].copy(), POS * 2)),
    ("LogNormal", (REAL, POS), (REAL * 0.5, POS[::-1].copy())),
    ("Laplace", (REAL, POS), (REAL[::-1].copy(), POS * 2)),
    ("Uniform", (REAL - 1, REAL + 1), (REAL - 2, REAL + 3)),
    ("Exponential", (POS,), (POS[::-1].copy(),)),
    ("Gamma", (POS, POS * 2), (POS[::-1].copy(), POS)),
    ("Beta", (POS, POS * 2), (POS[::-1].copy(), POS)),
    ("Dirichlet", (POS * np.ones((2, 3)),), (POS[::-1] * np.ones((2, 3)),)),
    ("Bernoulli", (PROB,), (PROB[::-1].copy(),)),
    ("Binomial", (4.0, PROB), (4.0, PROB[::-1].copy())),
    ("Categorical", (SIMPLEX,), (SIMPLEX[::-1].copy(),)),
    ("OneHotCategorical", (SIMPLEX,), (SIMPLEX[::-1].copy(),)),
    ("Poisson", (POS,), (POS * 3,)),
    ("MultivariateNormal", (REAL, COV), (POS, np.eye(3) * 1.5 + COV * 0.2)),
    ("Gumbel", (REAL, POS), (REAL[::-1].copy(), POS * 2)),
    ("Geometric", (PROB,), (PROB[::-1].copy(),)),
    ("HalfNormal", (POS,), (POS[::-1].copy(),)),
    ("Cauchy", (REAL, POS), (REAL[::-1].copy(), POS * 2)),
    ("Chi2", (POS,), (POS * 2,)),
]


@pytest.mark.parametrize("name,pa,qa", KL_PAIRS, ids=[k[0] for k in KL_PAIRS])
def test_kl_divergence_matches_pytorch(name, pa, qa):
    torch_ref = pytest.importorskip("torch")
    p, pp = _make(torch, name, pa)
    q, _ = _make(torch, name, qa)
    rp, rpp = _make(torch_ref, name, pa)
    rq, _ = _make(torch_ref, name, qa)
    kl, rkl = D.kl_divergence(p, q), torch_ref.distributions.kl_divergence(rp, rq)
    _cmp(kl, rkl)
    kl.sum().backward()
    rkl.sum().backward()
    for a, b in zip(pp, rpp):
        _cmp(a.grad, b.grad, rtol=1e-6, atol=1e-8)


def test_kl_independent_and_missing_pair():
    torch_ref = pytest.importorskip("torch")
    res = []
    for lib in (torch, torch_ref):
        Dl = lib.distributions
        p = Dl.Independent(Dl.Normal(lib.tensor(REAL), lib.tensor(POS)), 1)
        q = Dl.Independent(Dl.Normal(lib.tensor(POS), lib.tensor(POS * 2)), 1)
        assert tuple(p.batch_shape) == () and tuple(p.event_shape) == (3,)
        res.append((Dl.kl_divergence(p, q), p.log_prob(lib.tensor(POS)), p.entropy()))
        with pytest.raises(NotImplementedError):
            Dl.kl_divergence(Dl.Poisson(lib.tensor(1.0)), Dl.Normal(0.0, 1.0))
    for a, b in zip(*res):
        _cmp(a, b, rtol=1e-6)


@pytest.mark.usefixtures("cpu_default_device")  # messages print CPU tensors, as PyTorch's
def test_validate_args_errors_match_pytorch():
    torch_ref = pytest.importorskip("torch")
    bad = [
        ("Normal", (0.0, -1.0)),
        ("Exponential", (-2.0,)),
        ("Bernoulli", (1.5,)),
        ("Gamma", (1.0, 0.0)),
        ("Uniform", (2.0, 1.0)),
        ("Geometric", (0.0,)),
        ("StudentT", (-1.0,)),
    ]
    for name, args in bad:
        with pytest.raises(ValueError) as ref:
            getattr(torch_ref.distributions, name)(*[torch_ref.tensor(a) for a in args])
        with pytest.raises(ValueError) as ours:
            getattr(D, name)(*[torch.tensor(a) for a in args])
        assert str(ref.value) == str(ours.value)
        getattr(D, name)(*[torch.tensor(a) for a in args], validate_args=False)
    with pytest.raises(ValueError) as ref:
        torch_ref.distributions.Exponential(torch_ref.tensor(1.0)).log_prob(torch_ref.tensor(-1.0))
    with pytest.raises(ValueError) as ours:
        D.Exponential(torch.tensor(1.0)).log_prob(torch.tensor(-1.0))
    assert str(ref.value) == str(ours.value)
    for lib in (torch, torch_ref):
        d = lib.distributions.Normal(lib.zeros(2), lib.ones(2))
        assert repr(d) == "Normal(loc: torch.Size([2]), scale: torch.Size([2]))"
    with pytest.raises(ValueError, match="Either `probs` or `logits`"):
        D.Bernoulli(probs=torch.tensor(0.5), logits=torch.tensor(0.0))


def test_logits_parametrisation_matches_pytorch():
    torch_ref = pytest.importorskip("torch")
    logits = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.7]])
    out = []
    for lib in (torch, torch_ref):
        x = lib.tensor(logits, requires_grad=True)
        c = lib.distributions.Categorical(logits=x)
        b = lib.distributions.Bernoulli(logits=x)
        v = lib.tensor([1, 2])
        loss = c.log_prob(v).sum() + c.entropy().sum() + b.entropy().sum()
        loss.backward()
        out.append((c.probs, b.probs, c.logits, x.grad))
    for a, b in zip(*out):
        _cmp(a, b)


def test_rsample_gradients_match_the_reparameterisation():
    # Normal: x = loc + scale * eps, so d sum(x) / d scale = sum(eps) = sum((x - loc) / scale)
    loc = torch.tensor(REAL, requires_grad=True)
    scale = torch.tensor(POS, requires_grad=True)
    torch.manual_seed(1)
    x = D.Normal(loc, scale).rsample((4,))
    assert tuple(x.shape) == (4, 3) and x.requires_grad
    x.sum().backward()
    eps = (_np(x) - REAL) / POS
    np.testing.assert_allclose(_np(loc.grad), [4.0] * 3)
    np.testing.assert_allclose(_np(scale.grad), eps.sum(0), rtol=1e-10)
    assert not D.Normal(loc, scale).sample((2,)).requires_grad


def test_gamma_rsample_gradient_matches_pytorch_standard_gamma_grad():
    torch_ref = pytest.importorskip("torch")
    alpha_v = np.array([0.3, 1.0, 2.5, 9.0, 40.0])
    alpha = torch.tensor(alpha_v, requires_grad=True)
    torch.manual_seed(3)
    x = D.Gamma(alpha, torch.ones(5)).rsample()
    x.sum().backward()
    expected = torch_ref._standard_gamma_grad(torch_ref.tensor(alpha_v), torch_ref.tensor(_np(x)))
    # PyTorch's _standard_gamma_grad is itself an approximation (about 5e-5 relative; ours is
    # float64 implicit differentiation of the incomplete gamma function, about 1e-9)
    np.testing.assert_allclose(_np(alpha.grad), expected.numpy(), rtol=3e-4)


SAMPLED = [
    ("Normal", (REAL, POS)),
    ("Laplace", (REAL, POS)),
    ("Uniform", (REAL - 1, REAL + 2)),
    ("Exponential", (POS,)),
    ("Gamma", (POS, POS[::-1].copy())),
    ("Beta", (POS, POS[::-1].copy())),
    ("LogNormal", (REAL * 0.3, POS * 0.3)),
    ("Bernoulli", (PROB,)),
    ("Poisson", (POS * 2,)),
    ("Binomial", (5.0, PROB)),
    ("OneHotCategorical", (SIMPLEX,)),
    ("Dirichlet", (POS * np.ones((2, 3)),)),
    ("MultivariateNormal", (REAL, COV)),
    ("HalfNormal", (POS,)),
    ("StudentT", (POS * 4, REAL, POS)),
    ("Chi2", (POS * 2,)),
    ("Gumbel", (REAL, POS)),
    ("Geometric", (PROB,)),
    ("Multinomial", (4, SIMPLEX)),
]


@pytest.mark.parametrize("name,args", SAMPLED, ids=[s[0] for s in SAMPLED])
def test_sample_statistics(name, args):
    n = 20000
    d, _ = _make(torch, name, args, grad=False)
    torch.manual_seed(0)
    s = _np(d.sample((n,)))
    assert s.shape == (n,) + tuple(d.batch_shape) + tuple(d.event_shape)
    mean, var = _np(d.mean), _np(d.variance)
    # the sample mean is within 6 standard errors (failure odds ~1e-9 per entry)
    np.testing.assert_array_less(np.abs(s.mean(0) - mean), 6 * np.sqrt(var / n) + 1e-12)
    torch.manual_seed(0)
    np.testing.assert_array_equal(_np(d.sample((n,))), s)  # seeded draws repeat


def test_categorical_sample_frequencies_and_support():
    d = D.Categorical(torch.tensor(SIMPLEX))
    torch.manual_seed(0)
    s = _np(d.sample((30000,)))
    assert s.dtype == np.int64 and s.shape == (30000, 2)
    for b in range(2):
        freq = np.bincount(s[:, b], minlength=3) / 30000
        se = np.sqrt(SIMPLEX[b] * (1 - SIMPLEX[b]) / 30000)
        np.testing.assert_array_less(np.abs(freq - SIMPLEX[b]), 6 * se)
    assert tuple(d.enumerate_support().shape) == (3, 2)


@pytest.mark.parametrize("name", ["Normal", "LogNormal", "Laplace", "Uniform", "Exponential"])
def test_cdf_icdf_mode_and_expand_match_pytorch(name):
    torch_ref = pytest.importorskip("torch")
    args, values = CASES[name]
    d, _ = _make(torch, name, args)
    rd, _ = _make(torch_ref, name, args)
    v, rv = torch.tensor(values), torch_ref.tensor(values)
    _cmp(d.cdf(v), rd.cdf(rv))
    q = np.array([0.1, 0.5, 0.8])
    _cmp(d.icdf(torch.tensor(q)), rd.icdf(torch_ref.tensor(q)))
    if name != "Uniform":  # PyTorch's Uniform has no mode
        _cmp(d.mode, rd.mode)
    e, re = d.expand((2, 3)), rd.expand((2, 3))
    assert tuple(e.batch_shape) == tuple(re.batch_shape) == (2, 3)
    _cmp(e.log_prob(v), re.log_prob(rv))
    assert tuple(e.sample((4,)).shape) == tuple(re.sample((4,)).shape)


def test_transformed_distributions_match_pytorch():
    torch_ref = pytest.importorskip("torch")
    res = []
    for lib in (torch, torch_ref):
        Dl = lib.distributions
        loc = lib.tensor(REAL, requires_grad=True)
        scale = lib.tensor(POS, requires_grad=True)
        squashed = Dl.TransformedDistribution(Dl.Normal(loc, scale), [Dl.TanhTransform()])
        y = lib.tensor(np.array([-0.5, 0.1, 0.9]))
        chain = Dl.TransformedDistribution(
            Dl.Normal(loc, scale),
            [Dl.AffineTransform(0.5, 2.0), Dl.ExpTransform()],
        )
        sig = Dl.TransformedDistribution(Dl.Normal(loc, scale), Dl.SigmoidTransform())
        lps = (squashed.log_prob(y), chain.log_prob(lib.tensor(POS)), sig.log_prob(y.abs()))
        sum(lp.sum() for lp in lps).backward()
        res.append((*lps, loc.grad, scale.grad, squashed.cdf(y)))
        assert squashed.has_rsample and tuple(squashed.rsample((5,)).shape) == (5, 3)
    for a, b in zip(*res):
        _cmp(a, b, rtol=1e-6, atol=1e-8)


def test_mvn_parametrisations_expand_and_utils_match_pytorch():
    torch_ref = pytest.importorskip("torch")
    prec = np.linalg.inv(COV)
    tril = np.linalg.cholesky(COV)
    x = np.stack([REAL, POS])
    res = []
    for lib in (torch, torch_ref):
        Dl = lib.distributions
        a = Dl.MultivariateNormal(lib.tensor(REAL), precision_matrix=lib.tensor(prec))
        b = Dl.MultivariateNormal(lib.tensor(REAL), scale_tril=lib.tensor(tril))
        c = Dl.Categorical(logits=lib.tensor(SIMPLEX)).expand((4, 2))
        assert tuple(c.batch_shape) == (4, 2)
        u = lib.distributions.utils
        res.append(
            (
                a.log_prob(lib.tensor(x)),
                b.log_prob(lib.tensor(x)),
                a.covariance_matrix,
                b.precision_matrix,
                a.entropy(),
                c.log_prob(lib.tensor([[0, 2]] * 4)),
                u.probs_to_logits(lib.tensor(PROB), is_binary=True),
                u.clamp_probs(lib.tensor([0.0, 1.0], dtype=lib.float32)),
            )
        )
    for p, q in zip(*res):
        _cmp(p, q, rtol=1e-6, atol=1e-8)
