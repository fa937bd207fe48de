"""``chainrule.torch``'s batch norm on the fused primitive against PyTorch itself.

Values, input/weight/bias gradients, running statistics (momentum and the cumulative average),
evaluation, the module options and the double backward of ``create_graph``, for channels-first
tensors laid out channels first (contiguous) and channels last (what the convolutions return).
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as ct

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(11)


def _pair(value, requires_grad=False):
    return (
        torch.tensor(value, requires_grad=requires_grad),
        ct.tensor(value, requires_grad=requires_grad),
    )


def _close(a, b, tol=2e-5):
    a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
    np.testing.assert_allclose(np.asarray(b.detach().numpy()), a, rtol=tol, atol=tol)


MODULES = [("BatchNorm1d", (6, 3)), ("BatchNorm1d", (4, 3, 5)), ("BatchNorm2d", (3, 3, 4, 5))]
MODULES += [("BatchNorm3d", (2, 3, 2, 3, 2))]


@pytest.mark.parametrize("name,shape", MODULES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"momentum": None},
        {"affine": False},
        {"bias": False},
        {"track_running_stats": False},
    ],
    ids=["default", "cumulative", "no-affine", "no-bias", "no-running"],
)
def test_module_matches_pytorch(name, shape, options):
    if "bias" in options and tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4):
        pytest.skip("bias= needs PyTorch 2.4")
    c = shape[1]
    theirs = getattr(torch.nn, name)(c, **options)
    ours = getattr(ct.nn, name)(c, **options)
    if theirs.weight is not None:
        with torch.no_grad():
            # values from NumPy: PyTorch's global generator is left as other tests expect it
            theirs.weight.copy_(torch.tensor(RNG.uniform(0.5, 1.5, c).astype(np.float32)))
            if theirs.bias is not None:
                theirs.bias.copy_(torch.tensor(RNG.uniform(-1.0, 1.0, c).astype(np.float32)))
    ours.load_state_dict({k: ct.tensor(v.numpy()) for k, v in theirs.state_dict().items()})
    for step in range(2):
        xn = (RNG.standard_normal(shape) * 2.0 + step).astype(np.float32)
        cot = RNG.standard_normal(shape).astype(np.float32)
        tx, cx = _pair(xn, requires_grad=True)
        ty, cy = theirs(tx), ours(cx)
        _close(ty, cy)
        (ty * torch.tensor(cot)).sum().backward()
        (cy * ct.tensor(cot)).sum().backward()
        _close(tx.grad, cx.grad)
    for key, value in theirs.state_dict().items():
        _close(value, ours.state_dict()[key])
    for pname, p in theirs.named_parameters():
        _close(p.grad, dict(ours.named_parameters())[pname].grad, tol=1e-4)
    theirs.eval()
    ours.eval()
    xn = RNG.standard_normal(shape).astype(np.float32)
    _close(theirs(torch.tensor(xn)), ours(ct.tensor(xn)))


@pytest.mark.parametrize("channels_last", [False, True])
def test_functional_batch_norm_matches_pytorch(channels_last):
    shape = (4, 3, 5, 6)
    xn = (RNG.standard_normal(shape) * 3.0 - 2.0).astype(np.float32)
    if channels_last:  # (N, C, H, W) laid out as (N, H, W, C), as the convolutions return it
        xn = np.ascontiguousarray(xn.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    wn = RNG.uniform(0.5, 1.5, 3).astype(np.float32)
    bn = RNG.uniform(-1.0, 1.0, 3).astype(np.float32)
    tx, cx = _pair(xn, requires_grad=True)
    tw, cw = _pair(wn, requires_grad=True)
    tb, cb = _pair(bn, requires_grad=True)
    trm, crm = _pair(np.zeros(3, np.float32))
    trv, crv = _pair(np.ones(3, np.float32))
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, True, 0.2, 1e-4)
    cy = ct.nn.functional.batch_norm(cx, crm, crv, cw, cb, True, 0.2, 1e-4)
    _close(ty, cy)
    assert tuple(cy.shape) == shape
    cot = RNG.standard_normal(shape).astype(np.float32)
    (ty * torch.tensor(cot)).sum().backward()
    (cy * ct.tensor(cot)).sum().backward()
    for a, b in (
        (tx.grad, cx.grad),
        (tw.grad, cw.grad),
        (tb.grad, cb.grad),
        (trm, crm),
        (trv, crv),
    ):
        _close(a, b, tol=1e-4)


def test_double_backward_matches_pytorch():
    shape = (5, 2, 3)
    xn = RNG.standard_normal(shape)
    wn = RNG.uniform(0.5, 1.5, 2)
    tx, cx = _pair(xn, requires_grad=True)
    tw, cw = _pair(wn, requires_grad=True)
    outs = []
    for lib, x, w in ((torch, tx, tw), (ct, cx, cw)):
        y = lib.nn.functional.batch_norm(x, None, None, w, None, True, 0.1, 1e-5)
        loss = (y**3).sum()
        gx, gw = lib.autograd.grad(loss, (x, w), create_graph=True)
        ((gx**2).sum() + (gw**2).sum()).backward()
        outs.append((x.grad, w.grad))
    (a1, a2), (b1, b2) = outs
    _close(a1, b1, tol=1e-8)
    _close(a2, b2, tol=1e-8)


@pytest.mark.parametrize("affine", [True, False])
def test_functional_evaluation_matches_pytorch(affine):
    shape = (3, 4, 5)
    xn = RNG.standard_normal(shape).astype(np.float32)
    rm, rv = RNG.standard_normal(4).astype(np.float32), RNG.uniform(0.5, 2, 4).astype(np.float32)
    wn, bn = RNG.standard_normal(4).astype(np.float32), RNG.standard_normal(4).astype(np.float32)
    tx, cx = _pair(xn, requires_grad=True)
    tw, cw = _pair(wn, requires_grad=True)
    tb, cb = _pair(bn, requires_grad=True)
    args_t = (torch.tensor(rm), torch.tensor(rv)) + ((tw, tb) if affine else (None, None))
    args_c = (ct.tensor(rm), ct.tensor(rv)) + ((cw, cb) if affine else (None, None))
    ty = torch.nn.functional.batch_norm(tx, *args_t, False, 0.1, 1e-3)
    cy = ct.nn.functional.batch_norm(cx, *args_c, False, 0.1, 1e-3)
    _close(ty, cy)
    ty.sum().backward()
    cy.sum().backward()
    _close(tx.grad, cx.grad)
    if affine:
        _close(tw.grad, cw.grad, tol=1e-4)
        _close(tb.grad, cb.grad, tol=1e-4)


@pytest.mark.parametrize("offset,spread", [(0.0, 1.0), (100.0, 0.1), (1000.0, 1.0)])
def test_float32_accuracy_against_float64(offset, spread):
    """Per-channel sums in blocks and a corrected mean: float32 results within ~1e-6 of the
    float64 answer even for a mean a thousand times the spread."""
    xn = (RNG.standard_normal((16, 8, 32, 32)) * spread + offset).astype(np.float32)
    xn = np.ascontiguousarray(xn.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    cot = RNG.standard_normal(xn.shape).astype(np.float32)
    x64 = torch.tensor(xn.astype(np.float64), requires_grad=True)
    ref = torch.nn.functional.batch_norm(x64, None, None, None, None, True)
    (ref * torch.tensor(cot, dtype=torch.float64)).sum().backward()
    cx = ct.tensor(xn, requires_grad=True)
    cy = ct.nn.functional.batch_norm(cx, None, None, None, None, True)
    (cy * ct.tensor(cot)).sum().backward()
    np.testing.assert_allclose(cy.detach().numpy(), ref.detach().numpy(), atol=5e-6)
    scale = np.abs(x64.grad.numpy()).max()
    np.testing.assert_allclose(cx.grad.numpy(), x64.grad.numpy(), atol=5e-6 * scale)
