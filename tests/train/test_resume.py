"""Training resumed from a checkpoint gives exactly the parameters of an uninterrupted run."""

import numpy as np
import pytest
from train_helpers import blobs, make_model, weights

import chainrule.core as mx
import chainrule.nn as nn
from chainrule import load_checkpoint, save_checkpoint
from chainrule.checkpoint import named_arrays
from chainrule.data import DataLoader, TensorDataset
from chainrule.train import LearningRateScheduler, ModelCheckpoint, fit

optim = pytest.importorskip("chainrule.optimizers")


def _setup(style, seed):
    """Model (with dropout), optimizer and scheduler, built from `seed`."""
    model = make_model(seed=seed, p=0.3)
    if style == "mlx":
        # a schedule inside the optimizer: its step count lives in optimizer.state
        opt = optim.Adam(learning_rate=optim.exponential_decay(0.02, 0.99))
        return model, opt, None
    opt = optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.8)
    return model, opt, sched


def _train(model, opt, sched, data, epochs, initial_epoch=0, callbacks=()):
    (X, y), val = data
    cbs = list(callbacks) + ([LearningRateScheduler(sched)] if sched is not None else [])
    return fit(
        model,
        opt,
        nn.CrossEntropyLoss(),
        (X, y),
        val_data=val,
        epochs=epochs,
        batch_size=32,
        shuffle=True,
        callbacks=cbs,
        initial_epoch=initial_epoch,
        progress=False,
    )


def _opt_state(opt):
    from chainrule.utils import tree_flatten

    if hasattr(opt, "param_groups") and opt.param_groups:
        sd = opt.state_dict()
        flat = [(f"{i}.{k}", v) for i, s in sd["state"].items() for k, v in s.items()]
        return flat + [("groups", repr(sd["param_groups"]))]
    return tree_flatten(opt.state)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("style", ["mlx", "torch"])
def test_resume_matches_an_uninterrupted_run_exactly(style, data, tmp_path):
    # uninterrupted: 4 epochs
    model, opt, sched = _setup(style, seed=0)
    mx.random.seed(123)
    straight = _train(model, opt, sched, data, epochs=4)
    expected, expected_opt = weights(model), _opt_state(opt)

    # interrupted: 2 epochs, checkpoint, then fresh objects and the RNG disturbed
    model, opt, sched = _setup(style, seed=0)
    mx.random.seed(123)
    first = _train(model, opt, sched, data, epochs=2)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, opt, sched, epoch=2, extra={"history": first.history})
    del model, opt, sched
    mx.random.seed(999)
    mx.random.normal((50,))
    model, opt, sched = _setup(style, seed=7)
    info = load_checkpoint(path, model, opt, sched)
    assert info["epoch"] == 2
    assert info["extra"]["history"]["loss"] == first["loss"]
    second = _train(model, opt, sched, data, epochs=4, initial_epoch=info["epoch"])

    _assert_same(weights(model), expected)
    got_opt = _opt_state(opt)
    assert [k for k, _ in got_opt] == [k for k, _ in expected_opt]
    for (k, a), (_, b) in zip(got_opt, expected_opt):
        if isinstance(a, str):
            assert a == b, k
        else:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=k)
    assert first["loss"] + second["loss"] == straight["loss"]
    assert first["lr"] + second["lr"] == straight["lr"]


def test_resume_with_model_checkpoint_and_a_dataloader(tmp_path):
    """The ModelCheckpoint file of epoch 2 resumes a DataLoader-fed run exactly."""
    X, y = blobs(n=150, seed=4)
    loader = DataLoader(TensorDataset(X, y), batch_size=16, shuffle=True)
    data = ((X, y), None)

    def run(epochs, initial_epoch=0, model=None, opt=None, callbacks=()):
        return fit(
            model,
            opt,
            nn.losses.cross_entropy,
            loader,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            progress=False,
        )

    del data
    model, opt = make_model(seed=1, p=0.5), optim.SGD(learning_rate=0.1, momentum=0.9)
    mx.random.seed(5)
    run(4, model=model, opt=opt)
    expected = weights(model)

    model, opt = make_model(seed=1, p=0.5), optim.SGD(learning_rate=0.1, momentum=0.9)
    mx.random.seed(5)
    saver = ModelCheckpoint(tmp_path / "ep{epoch}.ckpt", monitor="loss", save_best_only=False)
    run(2, model=model, opt=opt, callbacks=[saver])
    model, opt = make_model(seed=2, p=0.5), optim.SGD(learning_rate=0.1, momentum=0.9)
    info = load_checkpoint(tmp_path / "ep2.ckpt", model, opt)
    run(4, info["epoch"], model=model, opt=opt)
    _assert_same(weights(model), expected)


def test_empty_subtrees_of_the_optimizer_state_survive(tmp_path):
    model = make_model()
    opt = optim.Adam(learning_rate=0.01)
    loss_and_grad = nn.value_and_grad(
        model, lambda m, x, y: nn.losses.cross_entropy(m(x), y).mean()
    )
    X, y = blobs(n=8)
    _, grads = loss_and_grad(model, mx.array(X), mx.array(y))
    opt.update(model, grads)
    assert opt.state["drop"] == {}  # Dropout has no parameters
    save_checkpoint(tmp_path / "c.ckpt", model, opt)
    opt2 = optim.Adam(learning_rate=0.01)
    load_checkpoint(tmp_path / "c.ckpt", make_model(seed=3), opt2)
    assert opt2.state.keys() == opt.state.keys() and opt2.state["drop"] == {}
    assert opt2.state["fc1"].keys() == opt.state["fc1"].keys()
    np.testing.assert_array_equal(
        np.asarray(opt2.state["fc1"]["weight"]["m"]), np.asarray(opt.state["fc1"]["weight"]["m"])
    )
    assert int(opt2.state["step"].item()) == 1


def test_optimizer_style_mismatch_is_refused_before_changes(tmp_path):
    model = make_model()
    save_checkpoint(tmp_path / "c.ckpt", model, optim.Adam(learning_rate=0.01))
    other = make_model(seed=4)
    before = weights(other)
    with pytest.raises(ValueError, match="mlx-style optimizer state"):
        load_checkpoint(tmp_path / "c.ckpt", other, optim.Adam(other.parameters(), lr=0.01))
    _assert_same(weights(other), before)
    assert all(a.requires_grad for _, a in named_arrays(other))
