"""torch.optim.swa_utils against real PyTorch: SWA and EMA averages, update_bn, SWALR."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule.torch as torch

_rng = np.random.default_rng(5)
X = _rng.normal(size=(16, 3)).astype(np.float32)
Y = _rng.normal(size=(16, 2)).astype(np.float32)


def _model(lib, bn=False):
    layers = [lib.nn.Linear(3, 4)]
    if bn:
        layers.append(lib.nn.BatchNorm1d(4))
    layers += [lib.nn.ReLU(), lib.nn.Linear(4, 2)]
    return lib.nn.Sequential(*layers)


def _copy_weights(src_ref, dst):
    """Give a chainrule model the weights of a PyTorch one (same layout)."""
    state = {k: torch.tensor(v.detach().numpy()) for k, v in src_ref.state_dict().items()}
    dst.load_state_dict(state)


def _np(x):
    return np.asarray(x.detach().numpy() if hasattr(x, "detach") else x)


def _train_and_average(lib, model, averaged, steps=5):
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    x, y = lib.tensor(X), lib.tensor(Y)
    for _ in range(steps):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        averaged.update_parameters(model)


@pytest.mark.parametrize("kind", ["swa", "ema", "ema_single", "swa_buffers"])
def test_averaged_model_matches_torch(kind):
    torch_ref = pytest.importorskip("torch")
    torch_ref.manual_seed(0)
    ref = _model(torch_ref, bn=True)
    ours = _model(torch, bn=True)
    _copy_weights(ref, ours)

    def make(lib, model):
        utils = lib.optim.swa_utils
        if kind == "ema":
            return utils.AveragedModel(model, multi_avg_fn=utils.get_ema_multi_avg_fn(0.9))
        if kind == "ema_single":
            return utils.AveragedModel(model, avg_fn=utils.get_ema_avg_fn(0.8))
        return utils.AveragedModel(model, use_buffers=kind == "swa_buffers")

    avg_ref, avg = make(torch_ref, ref), make(torch, ours)
    _train_and_average(torch_ref, ref, avg_ref)
    _train_and_average(torch, ours, avg)
    assert int(avg.n_averaged.item()) == int(avg_ref.n_averaged.item()) == 5
    mine = dict(avg.module.state_dict())
    for name, value in avg_ref.module.state_dict().items():
        np.testing.assert_allclose(_np(mine[name]), _np(value), rtol=2e-5, atol=2e-6, err_msg=name)
    avg.eval()
    avg_ref.eval()
    np.testing.assert_allclose(
        _np(avg(torch.tensor(X))), _np(avg_ref(torch_ref.tensor(X))), rtol=2e-5, atol=2e-6
    )


def test_update_bn_matches_torch():
    torch_ref = pytest.importorskip("torch")
    torch_ref.manual_seed(1)
    ref = _model(torch_ref, bn=True)
    ours = _model(torch, bn=True)
    _copy_weights(ref, ours)
    batches = [X[:5], X[5:9], X[9:]]
    ref.eval()
    ours.eval()
    torch_ref.optim.swa_utils.update_bn([(torch_ref.tensor(b), 0) for b in batches], ref)
    torch.optim.swa_utils.update_bn([(torch.tensor(b), 0) for b in batches], ours)
    assert not ours.training and ours[1].momentum == 0.1
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        np.testing.assert_allclose(
            _np(ours.state_dict()[name]), _np(ref.state_dict()[name]), rtol=1e-5, err_msg=name
        )


def test_update_bn_without_batchnorm_does_nothing():
    model = _model(torch)
    before = {k: _np(v).copy() for k, v in model.state_dict().items()}
    torch.optim.swa_utils.update_bn([torch.tensor(X)], model)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(_np(v), before[k])


@pytest.mark.parametrize("strategy", ["cos", "linear"])
@pytest.mark.parametrize("anneal_epochs", [0, 3])
def test_swalr_matches_torch_and_its_state_goes_both_ways(strategy, anneal_epochs):
    torch_ref = pytest.importorskip("torch")

    def make(lib):
        w = lib.tensor(np.zeros(2, np.float32), requires_grad=True)
        b = lib.tensor(np.zeros(1, np.float32), requires_grad=True)
        opt = lib.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.2)
        sched = lib.optim.swa_utils.SWALR(
            opt, swa_lr=[0.05, 0.01], anneal_epochs=anneal_epochs, anneal_strategy=strategy
        )
        return opt, sched

    (o_ref, ref), (o, ours) = make(torch_ref), make(torch)
    for _ in range(5):
        o_ref.step()
        ref.step()
        o.step()
        ours.step()
        np.testing.assert_allclose(ours.get_last_lr(), ref.get_last_lr(), rtol=1e-12)
    assert set(ours.state_dict()) == set(ref.state_dict())
    _, again = make(torch)
    again.load_state_dict(ref.state_dict())
    assert again.anneal_func(0.5) == ref.anneal_func(0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        ours.get_lr()


def test_bad_arguments():
    utils = torch.optim.swa_utils
    with pytest.raises(ValueError, match="decay"):
        utils.get_ema_multi_avg_fn(1.5)
    with pytest.raises(AssertionError, match="Only one of"):
        utils.AveragedModel(_model(torch), avg_fn=utils.get_swa_avg_fn(), multi_avg_fn=len)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        utils.SWALR(opt, 0.01, anneal_strategy="step")
    with pytest.raises(ValueError, match="anneal_epochs"):
        utils.SWALR(opt, 0.01, anneal_epochs=-1)
    with pytest.raises(ValueError, match="same length"):
        utils.SWALR(opt, [0.01, 0.02])
