"""chainrule.torch.linalg against PyTorch's torch.linalg: values, shapes, dtypes, gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule.torch as ct

torch_ref = pytest.importorskip("torch")

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
SPD = A @ A.T
B = RNG.standard_normal((3, 2))
V = RNG.standard_normal((2, 3, 4))


def _same(ours, theirs, rtol=1e-6, atol=1e-8):
    if isinstance(theirs, (tuple, list)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b, rtol, atol)
        return
    assert str(ours.dtype).replace("torch.", "") == str(theirs.dtype).replace("torch.", "")
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), rtol=rtol, atol=atol)


CASES = [
    ("norm", (V,), {}),
    ("norm", (A,), {"ord": "nuc"}),
    ("norm", (A,), {"ord": math.inf}),
    ("norm", (V,), {"ord": 3, "dim": 1}),
    ("norm", (V,), {"dim": (0, 2), "keepdim": True}),
    ("vector_norm", (V,), {"ord": 1, "dim": (0, 1)}),
    ("vector_norm", (V,), {"ord": -math.inf}),
    *[("matrix_norm", (V,), {"ord": o}) for o in ("fro", "nuc", 1, -1, 2, -2, math.inf)],
    ("matrix_norm", (V,), {"ord": 1, "dim": (0, 2), "keepdim": True}),
    ("inv", (A,), {}),
    ("det", (A,), {}),
    ("slogdet", (A,), {}),
    ("solve", (A, B), {}),
    ("solve", (A, B[:, 0]), {}),
    ("solve", (A, B.T), {"left": False}),
    ("cholesky", (SPD,), {}),
    ("cholesky", (SPD,), {"upper": True}),
    ("cholesky", (np.tril(SPD) + np.triu(np.ones((3, 3)), 1),), {}),  # reads the lower triangle
    ("eigvalsh", (np.triu(SPD) + np.tril(np.ones((3, 3)), -1),), {"UPLO": "U"}),
    ("eigvalsh", (SPD,), {"UPLO": "U"}),
    ("svdvals", (V,), {}),
    ("pinv", (B,), {}),
    ("matrix_power", (A, -2), {}),
    ("matrix_exp", (A / 4,), {}),
    ("matrix_rank", (B @ B.T,), {}),
    ("cond", (A,), {}),
    ("cross", (V[..., :3], V[..., 1:]), {}),
    ("multi_dot", ([B[:, 0], A, A, B],), {}),
    ("vecdot", (V, V), {"dim": 1}),
    ("diagonal", (V,), {"offset": 1}),
    ("vander", (B[:, 0],), {"N": 4}),
    ("solve_triangular", (np.triu(A), B), {"upper": True}),
    ("solve_triangular", (np.tril(A), B.T), {"upper": False, "left": False, "unitriangular": True}),
    ("tensorinv", (RNG.standard_normal((4, 6, 8, 3)),), {"ind": 2}),
    ("tensorsolve", (RNG.standard_normal((6, 4, 2, 3, 4)), RNG.standard_normal((6, 4))), {}),
]


def _convert(v, lib):
    if isinstance(v, np.ndarray):
        return lib.tensor(v)
    if isinstance(v, list):
        return [_convert(x, lib) for x in v]
    return v


@pytest.mark.parametrize("name,args,kwargs", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_match_pytorch(name, args, kwargs, dtype):
    def cast(v):
        return (
            v.astype(dtype)
            if isinstance(v, np.ndarray)
            else ([cast(x) for x in v] if isinstance(v, list) else v)
        )

    args = [cast(a) for a in args]
    ours = getattr(ct.linalg, name)(*[_convert(a, ct) for a in args], **kwargs)
    theirs = getattr(torch_ref.linalg, name)(*[_convert(a, torch_ref) for a in args], **kwargs)
    tol = dict(rtol=2e-4, atol=1e-5) if dtype == "float32" else {}
    _same(ours, theirs, **tol)


def test_decompositions_reconstruct_like_pytorch():
    w, v = ct.linalg.eigh(ct.tensor(SPD))
    wt, vt = torch_ref.linalg.eigh(torch_ref.tensor(SPD))
    np.testing.assert_allclose(np.asarray(w), wt.numpy(), rtol=1e-10)
    np.testing.assert_allclose(np.abs(np.asarray(v)), np.abs(vt.numpy()), rtol=1e-8)
    q, r = ct.linalg.qr(ct.tensor(B))
    qt, rt = torch_ref.linalg.qr(torch_ref.tensor(B))
    np.testing.assert_allclose(np.abs(np.asarray(r)), np.abs(rt.numpy()), rtol=1e-10)
    assert tuple(q.shape) == tuple(qt.shape)
    for full in (True, False):
        u, s, vh = ct.linalg.svd(ct.tensor(B), full_matrices=full)
        ut, st, vht = torch_ref.linalg.svd(torch_ref.tensor(B), full_matrices=full)
        assert (u.shape, vh.shape) == (tuple(ut.shape), tuple(vht.shape))
        np.testing.assert_allclose(np.asarray(s), st.numpy(), rtol=1e-10)
    p, lo, up = ct.linalg.lu(ct.tensor(A))
    pt, lt, utt = torch_ref.linalg.lu(torch_ref.tensor(A))
    for a, b in ((p, pt), (lo, lt), (up, utt)):
        np.testing.assert_allclose(np.asarray(a), b.numpy(), rtol=1e-10, atol=1e-12)
    lu, piv = ct.linalg.lu_factor(ct.tensor(A))
    np.testing.assert_allclose(
        np.asarray(ct.linalg.lu_solve(lu, piv, ct.tensor(B))), np.linalg.solve(A, B), rtol=1e-10
    )
    w, _ = ct.linalg.eig(ct.tensor(A))
    wt, _ = torch_ref.linalg.eig(torch_ref.tensor(A))
    assert str(w.dtype).endswith("complex128")
    np.testing.assert_allclose(
        np.sort_complex(np.asarray(w)), np.sort_complex(wt.numpy()), rtol=1e-10
    )
    sol = ct.linalg.lstsq(ct.tensor(B), ct.tensor(A[:, :1])).solution
    np.testing.assert_allclose(
        np.asarray(sol),
        torch_ref.linalg.lstsq(torch_ref.tensor(B), torch_ref.tensor(A[:, :1])).solution.numpy(),
        rtol=1e-8,
    )


@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("inv", {}),
        ("det", {}),
        ("norm", {}),
        ("matrix_norm", {"ord": 1}),
        ("vector_norm", {"ord": 3}),
        ("cholesky", {}),
        ("eigvalsh", {}),
    ],
)
def test_gradients_match_pytorch(name, kwargs):
    x = SPD if name in ("cholesky", "eigvalsh") else A
    grads = []
    for lib in (ct, torch_ref):
        t = lib.tensor(x, requires_grad=True)
        out = getattr(lib.linalg, name)(t, **kwargs)
        w = lib.tensor(np.random.default_rng(1).standard_normal(tuple(out.shape)))
        (out * w).sum().backward()
        grads.append(np.asarray(t.grad.detach() if hasattr(t.grad, "detach") else t.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def test_errors_name_the_function():
    with pytest.raises(RuntimeError, match="square"):
        ct.linalg.inv(ct.ones(2, 3))
    with pytest.raises(RuntimeError, match="mode"):
        ct.linalg.qr(ct.ones(2, 2), mode="full")
