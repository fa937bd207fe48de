"""chainrule.torch.special against torch.special: values, dtypes and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as ct

torch_ref = pytest.importorskip("torch")

CASES = [
    ("digamma", (0.2, 8), {}),
    ("psi", (0.2, 8), {}),
    ("gammaln", (0.1, 10), {}),
    ("entr", (0.01, 2), {}),
    ("erf", (-2, 2), {}),
    ("erfc", (-2, 2), {}),
    ("erfcx", (-1, 3), {}),
    ("erfinv", (-0.9, 0.9), {}),
    ("exp2", (-2, 2), {}),
    ("expit", (-4, 4), {}),
    ("expm1", (-2, 2), {}),
    ("log1p", (-0.5, 2), {}),
    ("logit", (0.05, 0.95), {}),
    ("i0", (-3, 3), {}),
    ("i0e", (-3, 3), {}),
    ("ndtr", (-3, 3), {}),
    ("ndtri", (0.05, 0.95), {}),
    ("log_ndtr", (-3, 3), {}),
    ("sinc", (-2, 2), {}),
    ("round", (-3, 3), {}),
    ("softmax", (-2, 2), {"dim": 1}),
    ("log_softmax", (-2, 2), {"dim": 0}),
    ("logsumexp", (-2, 2), {"dim": 1}),
    ("multigammaln", (2.0, 5), {"p": 3}),
]


@pytest.mark.parametrize("name,domain,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_and_gradients_match_pytorch(name, domain, kwargs, dtype):
    v = np.random.default_rng(0).uniform(*domain, size=(3, 4)).astype(dtype)
    outs, grads = [], []
    for lib in (ct, torch_ref):
        x = lib.tensor(v, requires_grad=True)
        out = getattr(lib.special, name)(x, **kwargs)
        outs.append(out)
        if name != "round":
            (out * 1.5).sum().backward()
            grads.append(np.asarray(x.grad))
    assert str(outs[0].dtype).replace("torch.", "") == str(outs[1].dtype).replace("torch.", "")
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.asarray(outs[0].detach()), outs[1].detach().numpy(), **tol)
    if grads:
        np.testing.assert_allclose(grads[0], grads[1], **tol)


def test_entr_outside_its_domain():
    v = np.array([-1.0, 0.0, 0.5])
    np.testing.assert_allclose(
        np.asarray(ct.special.entr(ct.tensor(v))),
        torch_ref.special.entr(torch_ref.tensor(v)).numpy(),
    )


def test_binary_and_polygamma():
    x = np.array([0.0, 0.5, 2.0])
    y = np.array([1.5, 0.25, 3.0])
    for name in ("xlogy", "xlog1py"):
        a = getattr(ct.special, name)(ct.tensor(x), ct.tensor(y))
        b = getattr(torch_ref.special, name)(torch_ref.tensor(x), torch_ref.tensor(y))
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-12)
    a = ct.special.polygamma(2, ct.tensor(y))
    np.testing.assert_allclose(
        np.asarray(a), torch_ref.special.polygamma(2, torch_ref.tensor(y)).numpy(), rtol=1e-9
    )
