"""``chainrule.train``: a ready-made training loop, callbacks, metrics and history.

Typical use, with a model and optimizer in either style::

    from chainrule.train import fit, evaluate, EarlyStopping

    history = fit(model, optimizer, nn.CrossEntropyLoss(), (X_train, y_train),
                  val_data=(X_val, y_val), epochs=50, metrics=("accuracy", "f1_macro"),
                  callbacks=[EarlyStopping(patience=5)])
    print(evaluate(model, (X_test, y_test), nn.CrossEntropyLoss()))
    history.plot("history.png")

Progress bars need tqdm and plots need matplotlib: ``pip install "chainrule[train]"``.

Examples:
    >>> import numpy as np
    >>> import chainrule.core as mx
    >>> import chainrule.nn as nn
    >>> import chainrule.optimizers as optim
    >>> from chainrule.train import EarlyStopping, evaluate, fit
    >>> X = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    >>> y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    >>> mx.random.seed(0)
    >>> model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> stopper = EarlyStopping(monitor="val_loss", patience=3)
    >>> history = fit(model, optim.Adam(learning_rate=0.05), nn.CrossEntropyLoss(),
    ...               (X[:150], y[:150]), val_data=(X[150:], y[150:]), epochs=200,
    ...               batch_size=32, callbacks=[stopper], progress=False)
    >>> stopper.stopped_epoch is not None  # it stopped before epoch 200
    True
    >>> best = stopper.best_epoch  # and the model holds that epoch's weights
    >>> result = evaluate(model, (X[150:], y[150:]), nn.CrossEntropyLoss(), metrics=("accuracy",))
    >>> abs(result["loss"] - history["val_loss"][best]) < 1e-5
    True
    >>> result["accuracy"] > 0.9
    True
"""

from . import metrics
from .callbacks import (
    Callback,
    CallbackList,
    EarlyStopping,
    LearningRateScheduler,
    ModelCheckpoint,
)
from .fit import History, NonFiniteError, evaluate, fit, predict
from .metrics import (
    accuracy,
    confusion_matrix,
    f1,
    f1_score,
    get_metric,
    mae,
    mse,
    precision,
    r2,
    recall,
)
from .tensorboard import SummaryWriter, TensorBoard

__all__ = [
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "NonFiniteError",
    "accuracy",
    "confusion_matrix",
    "evaluate",
    "f1",
    "f1_score",
    "fit",
    "get_metric",
    "mae",
    "metrics",
    "mse",
    "precision",
    "predict",
    "r2",
    "recall",
    "SummaryWriter",
    "TensorBoard",
]
