"""``chainrule.train``: a ready-made training loop, callbacks, metrics and history.

Typical use, with a model and optimizer in either style::

    from chainrule.train import fit, evaluate, EarlyStopping

    history = fit(model, optimizer, nn.CrossEntropyLoss(), (X_train, y_train),
                  val_data=(X_val, y_val), epochs=50, metrics=("accuracy", "f1_macro"),
                  callbacks=[EarlyStopping(patience=5)])
    print(evaluate(model, (X_test, y_test), nn.CrossEntropyLoss()))
    history.plot("history.png")

Progress bars need tqdm and plots need matplotlib: ``pip install 'chainrule[train]'``.
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
