"""torch.func (grad, vjp, jvp, vmap, jacrev, jacfwd, hessian, functional_call) against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.nn
import chainrule.torch as torch
import chainrule.torch.func  # noqa: F401  (binds torch.func)

A = np.array([0.3, -0.5, 0.9], dtype=np.float32)
B = np.array([1.2, 0.4, -2.0], dtype=np.float32)


def _ref():
    return pytest.importorskip("torch")


def _close(a, b, rtol=1e-5) -> None:
    if isinstance(b, (tuple, list)):
        assert isinstance(a, tuple) and len(a) == len(b)
        for u, w in zip(a, b):
            _close(u, w, rtol)
        return
    assert tuple(a.shape) == tuple(b.shape)
    np.testing.assert_allclose(np.array(a), b.detach().numpy(), rtol=rtol, atol=1e-6)


def _run(make):
    """``make(lib)`` for chainrule.torch and real torch, compared structure for structure."""
    torch_ref = _ref()
    _close(make(torch), make(torch_ref))


def f(a, b):
    return (a.sin() * b).sum()


def test_grad_argnums_and_structure():
    _run(lambda lib: lib.func.grad(f)(lib.tensor(A), lib.tensor(B)))
    _run(lambda lib: lib.func.grad(f, argnums=(0, 1))(lib.tensor(A), lib.tensor(B)))
    _run(lambda lib: lib.func.grad(f, argnums=(1,))(lib.tensor(A), lib.tensor(B)))
    _run(lambda lib: lib.func.grad(f, argnums=-1)(lib.tensor(A), lib.tensor(B)))


def test_grad_has_aux_and_grad_and_value():
    def g(a):
        return (a * a).sum(), a.exp()

    _run(lambda lib: lib.func.grad(g, has_aux=True)(lib.tensor(A)))

    def gv(lib):
        grads, (value, aux) = lib.func.grad_and_value(g, has_aux=True)(lib.tensor(A))
        return grads, value, aux

    _run(gv)
    _run(lambda lib: lib.func.grad_and_value(f)(lib.tensor(A), lib.tensor(B)))


def test_grad_of_grad_and_dict_arguments():
    _run(
        lambda lib: lib.func.grad(lambda x: lib.func.grad(lambda y: (y**3).sum())(x).sum())(
            lib.tensor(A)
        )
    )

    def d(lib):
        params = {"w": lib.tensor(A), "b": lib.tensor(B)}
        out = lib.func.grad(lambda p: (p["w"] * p["b"].tanh()).sum())(params)
        return out["w"], out["b"]

    _run(d)


def test_grad_errors():
    torch_ref = _ref()
    for lib in (torch, torch_ref):
        with pytest.raises(RuntimeError, match="scalar"):
            lib.func.grad(lambda a: a * 2)(lib.tensor(A))
        with pytest.raises(RuntimeError, match="Got argnum=2, but only 2 positional inputs"):
            lib.func.grad(f, argnums=2)(lib.tensor(A), lib.tensor(B))


def test_vjp_and_jvp():
    def h(a, b):
        return a.sin() * b, a * b

    def vjp(lib):
        out, fn = lib.func.vjp(h, lib.tensor(A), lib.tensor(B))
        return (*out, *fn((lib.ones(3), lib.tensor(B))))

    _run(vjp)

    def vjp1(lib):
        out, fn = lib.func.vjp(lambda a: a.exp(), lib.tensor(A))
        return (out, *fn(lib.tensor(B)))

    _run(vjp1)

    def jvp(lib):
        out, t = lib.func.jvp(h, (lib.tensor(A), lib.tensor(B)), (lib.ones(3), lib.tensor(A)))
        return (*out, *t)

    _run(jvp)
    _run(lambda lib: lib.func.jvp(lambda a: a.tanh(), (lib.tensor(A),), (lib.tensor(B),)))


def test_vmap_in_dims_and_out_dims():
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
    _run(lambda lib: lib.func.vmap(lambda a, b: (a * b).sum())(lib.tensor(x), lib.tensor(x)))
    _run(
        lambda lib: lib.func.vmap(lambda a, b: a * b, in_dims=(1, None))(
            lib.tensor(x), lib.tensor(B[:1])
        )
    )
    _run(lambda lib: lib.func.vmap(lambda a: a.exp(), out_dims=1)(lib.tensor(x)))

    def per_example(lib):
        w = lib.tensor(A)
        return lib.func.vmap(lib.func.grad(lambda w, r: (w * r).sin().sum()), in_dims=(None, 0))(
            w, lib.tensor(x)
        )

    _run(per_example)


def test_jacrev_jacfwd_hessian():
    def k(a, b):
        return a.sin() * b.sum()

    for name in ("jacrev", "jacfwd"):
        _run(lambda lib, name=name: getattr(lib.func, name)(k)(lib.tensor(A), lib.tensor(B)))
        _run(
            lambda lib, name=name: getattr(lib.func, name)(k, argnums=(0, 1))(
                lib.tensor(A), lib.tensor(B)
            )
        )
    _run(lambda lib: lib.func.hessian(f)(lib.tensor(A), lib.tensor(B)))
    _run(lambda lib: lib.func.jacrev(lambda a: (a.exp(), a * 2))(lib.tensor(A)))


def test_functional_call_replaces_parameters_for_one_call():
    torch_ref = _ref()
    m = chainrule.nn.Linear(3, 2)  # the same class as torch.nn.Linear
    rm = torch_ref.nn.Linear(3, 2)
    with torch_ref.no_grad():
        rm.weight.copy_(torch_ref.tensor(np.array(m.weight)))
        rm.bias.copy_(torch_ref.tensor(np.array(m.bias)))
    x = np.stack([A, B])
    w = np.ones((2, 3), np.float32) * 0.5

    def run(lib, mod):
        out = lib.func.functional_call(mod, {"weight": lib.tensor(w)}, (lib.tensor(x),))
        grads = lib.func.grad(lambda p: lib.func.functional_call(mod, p, lib.tensor(x)).sum())(
            dict(mod.named_parameters())
        )
        return out, grads["weight"], grads["bias"], mod(lib.tensor(x))

    _close(run(torch, m), run(torch_ref, rm))
    with pytest.raises(ValueError, match="unexpected key"):
        torch.func.functional_call(m, {"nope": torch.ones(1)}, (torch.tensor(x),))


def test_results_are_tensors_and_traced_tensors_keep_pytorch_meanings():
    x = torch.ones(2, 3)
    # inside the transform the argument is still a Tensor: transpose(0, 1) swaps two dims
    g = torch.func.grad(lambda a: a.transpose(0, 1).sum(0)[0])(x)
    np.testing.assert_array_equal(np.array(g), [[1, 1, 1], [0, 0, 0]])
    assert type(g) is torch.Tensor
    assert type(torch.func.vmap(lambda a: a * 2)(x)) is torch.Tensor
    out, fn = torch.func.vjp(lambda a: a.exp(), x)
    assert type(out) is torch.Tensor and type(fn(torch.ones(2, 3))[0]) is torch.Tensor
    (h,) = torch.autograd.grad((x.requires_grad_() * 2).sum(), x)
    assert type(h) is torch.Tensor


def _mlp_params(rng):
    return {
        "fc1.weight": rng.standard_normal((6, 4)).astype(np.float32) * 0.5,
        "fc1.bias": rng.standard_normal(6).astype(np.float32) * 0.1,
        "fc2.weight": rng.standard_normal((3, 6)).astype(np.float32) * 0.5,
        "fc2.bias": rng.standard_normal(3).astype(np.float32) * 0.1,
    }


def _mlp(nn):
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 6)
            self.fc2 = nn.Linear(6, 3)

        def __call__(self, x):
            return self.fc2(self.fc1(x).tanh())

        forward = __call__

    return MLP


def test_per_sample_gradients_tutorial_matches_pytorch():
    torch_ref = _ref()
    rng = np.random.default_rng(0)
    values = _mlp_params(rng)
    data = rng.standard_normal((5, 4)).astype(np.float32)
    labels = np.array([0, 2, 1, 1, 0])
    results = []
    for lib, nn in ((torch, chainrule.nn), (torch_ref, torch_ref.nn)):
        model = _mlp(nn)()
        params = {k: lib.tensor(v) for k, v in values.items()}

        def loss(p, sample, target, lib=lib, model=model):
            logits = lib.func.functional_call(model, p, (sample.unsqueeze(0),))
            logp = logits - logits.exp().sum(-1, keepdim=True).log()
            return -(logp[0] * (lib.arange(3) == target)).sum()

        per = lib.func.vmap(lib.func.grad(loss), in_dims=(None, 0, 0))(
            params, lib.tensor(data), lib.tensor(labels)
        )
        results.append(tuple(per[k] for k in sorted(values)))
    _close(results[0], results[1])


def test_stack_module_state():
    torch_ref = _ref()
    out = []
    for lib, nn in ((torch, chainrule.nn), (torch_ref, torch_ref.nn)):
        models = [nn.Linear(3, 2) for _ in range(4)]
        params, buffers = lib.func.stack_module_state(models)
        assert sorted(params) == ["bias", "weight"] and buffers == {}
        assert params["weight"].requires_grad and params["weight"].is_leaf
        out.append(tuple(params["weight"].shape))
        w = params["weight"]
        np.testing.assert_allclose(np.array(w.detach()[2]), np.array(models[2].weight.detach()))
    assert out[0] == out[1] == (4, 2, 3)
