"""Pitfall 8: exact resume across processes.

The complaint: a run resumed from a checkpoint diverges from the uninterrupted run, because
the checkpoint holds the weights and the optimizer but not the random state (dropout), the
data order (a loader's own shuffling generator restarts from its seed), the NumPy/``random``
state the script uses, or the scheduler. A chainrule checkpoint holds all of them: saved at
epoch k, loaded in a new process, training continues to parameters equal, bit for bit, to
those of an uninterrupted run. Each run here is its own process.
"""

import numpy as np
import pytest
from pitfall_helpers import check, run_script

TOTAL, SAVED_AT = 4, 2

# A PyTorch-style loop: a loader with its own seed and two worker threads, augmentation with
# mx.random in the workers, dropout, NumPy and `random` noise in the loop, Adam and StepLR.
TORCH_STYLE = """
import random, sys
import numpy as np
import chainrule
import chainrule.core as mx
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule import load_checkpoint, save_checkpoint
from chainrule.data import DataLoader, Dataset

mode, total, saved_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

class Jitter(Dataset):
    def __init__(self, X, y):
        self.X, self.y = X, y
    def __len__(self):
        return len(self.X)
    def __getitem__(self, i):
        return self.X[i] + 0.05 * np.asarray(mx.random.normal((6,))), self.y[i]

data = np.random.default_rng(0)
X = data.normal(size=(120, 6)).astype(np.float32)
y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)

chainrule.seed(11)
model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
opt = optim.Adam(model.parameters(), lr=0.01)
sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
loader = DataLoader(Jitter(X, y), batch_size=16, shuffle=True, seed=3, num_workers=2)
loss_fn = nn.CrossEntropyLoss()

start = 0
if mode == "second":
    chainrule.seed(999)  # a new process with other random states: all must come from the file
    start = load_checkpoint("ckpt.safetensors", model, opt, sched, loader=loader)["epoch"]
for epoch in range(start, saved_at if mode == "first" else total):
    model.train()
    for xb, yb in loader:
        opt.zero_grad()
        noise = np.random.normal(scale=0.01, size=xb.shape).astype(np.float32)
        loss = loss_fn(model(xb + noise), yb) * (1.0 + 0.01 * random.random())
        loss.backward()
        opt.step()
    sched.step()
if mode == "first":
    save_checkpoint("ckpt.safetensors", model, opt, sched, epoch=saved_at, loader=loader)
else:
    np.savez(f"{mode}.npz", *[np.asarray(p) for p in model.parameters()],
             lr=opt.param_groups[0]["lr"])
"""

# An MLX-style run through fit: global shuffling, dropout, a schedule inside the optimizer,
# and ModelCheckpoint writing the file at the end of every epoch.
MLX_STYLE = """
import sys
import numpy as np
import chainrule
import chainrule.nn as nn
import chainrule.optimizers as optim
from chainrule import load_checkpoint
from chainrule.train import ModelCheckpoint, fit

mode, total, saved_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = np.random.default_rng(1)
X = data.normal(size=(100, 5)).astype(np.float32)
y = (X[:, 0] > X[:, 1]).astype(np.int64)

chainrule.seed(5)
model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.4), nn.Linear(16, 2))
opt = optim.Adam(learning_rate=optim.exponential_decay(0.02, 0.97))
start = 0
callbacks = []
if mode == "first":
    callbacks = [ModelCheckpoint("ep{epoch}.ckpt", monitor="loss", save_best_only=False)]
if mode == "second":
    chainrule.seed(123)
    start = load_checkpoint(f"ep{saved_at}.ckpt", model, opt)["epoch"]
fit(model, opt, nn.losses.cross_entropy, (X, y), epochs=saved_at if mode == "first" else total,
    initial_epoch=start, batch_size=10, callbacks=callbacks, progress=False)
if mode != "first":
    np.savez(f"{mode}.npz", *[np.asarray(p) for _, p in sorted(
        __import__("chainrule.utils", fromlist=["x"]).tree_flatten(model.parameters()))])
"""


def _params(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("script", [TORCH_STYLE, MLX_STYLE], ids=["pytorch-style", "mlx-style"])
def test_resumed_in_a_new_process_equals_the_uninterrupted_run_bit_for_bit(script, tmp_path):
    args = (str(TOTAL), str(SAVED_AT))
    check(run_script(script, "straight", *args, tmp_path=tmp_path))
    check(run_script(script, "first", *args, tmp_path=tmp_path))
    check(run_script(script, "second", *args, tmp_path=tmp_path))
    straight, resumed = _params(tmp_path / "straight.npz"), _params(tmp_path / "second.npz")
    assert straight.keys() == resumed.keys() and len(straight) >= 4
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)  # exact equality
    if script is TORCH_STYLE:
        # the control: without the loader's state (its own generator restarts from its seed
        # in a new process) the resumed run differs
        without = TORCH_STYLE.replace(", loader=loader)", ")")
        assert without.count("loader=loader") == 0
        check(run_script(without, "first", *args, tmp_path=tmp_path))
        check(run_script(without, "second", *args, tmp_path=tmp_path))
        resumed = _params(tmp_path / "second.npz")
        assert any(not np.array_equal(straight[k], resumed[k]) for k in straight)


def test_loader_state_round_trip_and_refusals(tmp_path):
    import chainrule.nn as nn
    from chainrule import load_checkpoint, save_checkpoint
    from chainrule.data import DataLoader, TensorDataset

    ds = TensorDataset(np.arange(20, dtype=np.float32))
    a = DataLoader(ds, batch_size=5, shuffle=True, seed=1)
    [list(a) for _ in range(3)]
    model = nn.Linear(1, 1)
    save_checkpoint(tmp_path / "c.ckpt", model, loader=a)
    b = DataLoader(ds, batch_size=5, shuffle=True, seed=1)
    load_checkpoint(tmp_path / "c.ckpt", model, loader=b)
    assert b.state_dict()["epochs"] == 3
    assert [x[0].tolist() for x in a] == [x[0].tolist() for x in b]  # the next epoch's order
    # a loader that shuffles from the global state cannot take a private generator's state
    with pytest.raises(ValueError, match="global"):
        load_checkpoint(tmp_path / "c.ckpt", model, loader=DataLoader(ds, shuffle=True))
    save_checkpoint(tmp_path / "d.ckpt", model)
    with pytest.raises(ValueError, match="no loader state"):
        load_checkpoint(tmp_path / "d.ckpt", model, loader=b)
