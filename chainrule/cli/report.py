"""A run's `report.html`: one self-contained page (figures embedded as `data:` URIs, no script,
no network) with the data summary, the training curves with the kept epoch marked, the test
figures (classification: confusion matrix, per-class precision/recall/F1, ROC and
precision-recall curves for two classes; regression: predicted against actual, residuals), the
model summary and the command that reproduces the run. The figures are also written as PNG
files, and the per-class numbers go into metrics.json (`per_class`).

`chainrule train` writes it; `chainrule report RUN_DIR` rebuilds it from the run's files and
its data (the test split is drawn again from the data named in config.json).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .args import HelpFormatter
from .errors import CommandError

__all__ = [
    "REPORT_FILES",
    "add_parser",
    "run",
    "classification_figures",
    "roc_curve",
    "pr_curve",
    "command_line",
    "write_report",
]

REPORT_FILES = {
    "classification": ("report.html", "confusion_matrix.png"),
    "binary": ("roc_curve.png", "pr_curve.png"),
    "regression": ("report.html", "predicted_vs_actual.png", "residuals.png"),
}


# ------------------------------------------------------------------------------- numbers


def classification_figures(y: np.ndarray, pred: np.ndarray, n: int) -> dict[str, Any]:
    """Confusion matrix and per-class precision, recall, F1 and support.

    Args:
        y: true class indices.
        pred: predicted class indices.
        n: number of classes.

    Returns:
        `confusion_matrix` (rows: true class, columns: predicted), `precision`, `recall`,
        `f1`, `support` (lists, one entry per class; 0 where undefined, as scikit-learn's
        `zero_division=0`).
    """
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(n), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    return {
        "confusion_matrix": cm.tolist(),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": actual.tolist(),
    }


def _binary_counts(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.argsort(-score, kind="mergesort")
    score, y = score[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # the end of each tie
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1 - tps).astype(np.float64)
    return fps, tps, score[last]


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates at every threshold (scikit-learn's `roc_curve` with
    `drop_intermediate=False`), and the area under the curve.

    Args:
        y: 1 for the positive class, 0 otherwise.
        score: the positive class's probability.

    Returns:
        (fpr, tpr, auc).
    """
    fps, tps, _ = _binary_counts(y, score)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def pr_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Precision and recall at every threshold (scikit-learn's `precision_recall_curve`, from
    the highest recall down, ending at precision 1, recall 0) and the average precision.

    Args:
        y: 1 for the positive class, 0 otherwise.
        score: the positive class's probability.

    Returns:
        (precision, recall, average precision).
    """
    fps, tps, _ = _binary_counts(y, score)
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    precision = np.r_[precision[::-1], 1.0]
    recall = np.r_[recall[::-1], 0.0]
    ap = float(-np.sum(np.diff(recall) * precision[:-1]))
    return precision, recall, ap


# ------------------------------------------------------------------------------- figures


def _figure() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> bytes:
    from chainrule.core.io import write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _figure().close(fig)
    data = buffer.getvalue()
    write_bytes(path, data)
    return data


def _confusion_png(cm: np.ndarray, classes: list[str], path: Path) -> bytes:
    plt = _figure()
    n = len(classes)
    size = min(10.0, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), [str(c) for c in classes], rotation=90 if n > 6 else 0)
    ax.set_yticks(range(n), [str(c) for c in classes])
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("confusion matrix (test)")
    if n <= 20:
        top = cm.max() if cm.size else 0
        for i in range(n):
            for j in range(n):
                color = "white" if cm[i, j] > top / 2 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=color, fontsize=8)
    return _save(fig, path)


def _curve_png(
    x: np.ndarray, y: np.ndarray, labels: tuple[str, str], title: str, path: Path
) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(x, y, drawstyle="steps-post" if "recall" in labels[0] else "default")
    if "false" in labels[0]:
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    return _save(fig, path)


def _scatter_png(x: np.ndarray, y: np.ndarray, kind: str, path: Path) -> bytes:
    plt = _figure()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(x, y, s=10, alpha=0.6)
    if kind == "predicted":
        low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([low, high], [low, high], linestyle=":", color="grey")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("predicted against actual (test)")
    else:
        ax.axhline(0, linestyle=":", color="grey")
        ax.set_xlabel("predicted")
        ax.set_ylabel("residual (actual - predicted)")
        ax.set_title("residuals (test)")
    return _save(fig, path)


# ---------------------------------------------------------------------------------- page


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(header: list[str] | None, rows: list[list[Any]], cls: str) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    if header is None:
        return f'<table class="{cls}"><tbody>{body}</tbody></table>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _img(png: bytes, alt: str, name: str) -> str:
    return f'<figure><img src="{_uri(png)}" alt="{html.escape(alt)}" id="{name}"><figcaption>{html.escape(name)}.png</figcaption></figure>'


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.5em 1em .5em 0}img{max-width:100%}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;white-space:pre-wrap}
figcaption{color:#666;font-size:.85em}.data-summary td{text-align:left}
"""


def command_line(args: argparse.Namespace) -> str:
    """The `chainrule train` command that reproduces a run: the options that differ from
    their defaults (progress and --overwrite left out)."""
    import shlex

    from .main import build_parser

    defaults = vars(build_parser().parse_args(["train", "--data", "x"]))
    words = ["chainrule", "train"]
    skip = {"run", "command", "resume", "no_progress", "overwrite", "tensorboard"}
    for key, value in vars(args).items():
        if key in skip or key.startswith("_") or key not in defaults:
            continue
        if value == defaults[key] and key != "data":
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is False or value is None:
            continue
        elif key == "image_size":
            words += [flag, f"{value[0]}x{value[1]}"]
        elif isinstance(value, list | tuple):
            words += [flag, ",".join(map(str, value)) or "none"]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def _model_rows(model: Any) -> tuple[list[list[Any]], int]:
    from chainrule.checkpoint import named_arrays

    rows, total = [], 0
    for name, a in named_arrays(model):
        size = int(np.size(a._data))
        total += size
        rows.append([name, "x".join(map(str, a.shape)) or "scalar", size])
    return rows, total


def write_report(
    folder: Path,
    config: dict[str, Any],
    metrics: dict[str, Any],
    history: Any,
    model: Any,
    outputs: np.ndarray,
    targets: np.ndarray,
    summary: list[list[Any]],
) -> dict[str, Any]:
    """Write report.html and its PNG figures into `folder`.

    Args:
        folder: the run directory (or its staging directory).
        config: the run's config.
        metrics: the figures of metrics.json (per split).
        history: the `History`.
        model: the trained model.
        outputs: the model's outputs on the test split (scores, or values for regression).
        targets: the test split's targets (class indices or values).
        summary: the data summary's rows (name, value).

    Returns:
        The per-class numbers (`{}` for regression), for metrics.json's `per_class`.
    """
    task = config["task"]
    parts: list[str] = []
    per_class: dict[str, Any] = {}
    title = f"chainrule run: {config.get('data', '')}"
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append("<h2>Data</h2>" + _table(None, summary, "data-summary"))
    split_rows = [
        [name] + [v for v in figures.values()]
        for name, figures in metrics.items()
        if isinstance(figures, dict) and name in ("train", "val", "test")
    ]
    keys = next((list(f) for n, f in metrics.items() if n in ("train", "val", "test")), [])
    parts.append("<h2>Figures</h2>" + _table(["split", *keys], split_rows, "metrics"))
    curves = (folder / "history.png").read_bytes() if (folder / "history.png").is_file() else b""
    kept = history.params.get("kept_epoch")
    note = f"kept epoch: {kept + 1} (marked)" if kept is not None else "kept: the last epoch"
    parts.append(
        f"<h2>Training curves</h2><p>{note}</p>"
        + (_img(curves, "training curves", "history") if curves else "")
    )
    parts.append("<h2>Test set</h2>")
    if task == "classification":
        classes = [str(c) for c in config["classes"]]
        pred = outputs.argmax(axis=1)
        figures = classification_figures(targets, pred, len(classes))
        cm = np.asarray(figures["confusion_matrix"])
        per_class = {"split": "test", "classes": classes, **figures}
        png = _confusion_png(cm, classes, folder / "confusion_matrix.png")
        parts.append(_img(png, "confusion matrix", "confusion_matrix"))
        parts.append(
            _table(
                ["true \\ predicted", *classes],
                [[c, *row] for c, row in zip(classes, cm.tolist())],
                "confusion-matrix",
            )
        )
        rows = [
            [c, p, r, f, int(s)]
            for c, p, r, f, s in zip(
                classes, figures["precision"], figures["recall"], figures["f1"], figures["support"]
            )
        ]
        parts.append(_table(["class", "precision", "recall", "F1", "support"], rows, "per-class"))
        if len(classes) == 2:
            z = outputs - outputs.max(axis=1, keepdims=True)
            prob = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
            y1 = (targets == 1).astype(np.int64)
            fpr, tpr, auc = roc_curve(y1, prob[:, 1])
            precision, recall, ap = pr_curve(y1, prob[:, 1])
            per_class.update(
                {"roc_auc": auc, "average_precision": ap, "positive_class": classes[1]}
            )
            roc = _curve_png(
                fpr,
                tpr,
                ("false positive rate", "true positive rate"),
                f"ROC (AUC {auc:.4f})",
                folder / "roc_curve.png",
            )
            pr = _curve_png(
                recall,
                precision,
                ("recall", "precision"),
                f"precision-recall (AP {ap:.4f})",
                folder / "pr_curve.png",
            )
            parts.append(
                f"<p>positive class: {html.escape(classes[1])}; ROC AUC {auc:.4f}; average precision {ap:.4f}</p>"
            )
            parts.append(
                _img(roc, "ROC curve", "roc_curve") + _img(pr, "precision-recall curve", "pr_curve")
            )
    else:
        predicted = outputs.reshape(-1)
        actual = targets.reshape(-1)
        a = _scatter_png(actual, predicted, "predicted", folder / "predicted_vs_actual.png")
        b = _scatter_png(predicted, actual - predicted, "residuals", folder / "residuals.png")
        parts.append(
            _img(a, "predicted against actual", "predicted_vs_actual")
            + _img(b, "residuals", "residuals")
        )
    rows, total = _model_rows(model)
    parts.append(
        f"<h2>Model</h2><p>{html.escape(config['model'].get('kind', 'mlp'))}: {total:,} parameters</p>"
    )
    parts.append(_table(["array", "shape", "size"], rows, "model-summary"))
    parts.append(f'<pre class="model">{html.escape(repr(model))}</pre>')
    command = config.get("command") or ""
    parts.append(f'<h2>Reproduce</h2><pre class="command">{html.escape(command)}</pre>')
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        + "\n".join(parts)
        + "</body></html>\n"
    )
    from chainrule.core.io import write_bytes

    write_bytes(folder / "report.html", page.encode("utf-8"))
    return per_class


# ---------------------------------------------------------------------- chainrule report


def add_parser(commands: Any) -> None:
    """Add `report` to the sub-command parsers."""
    report = commands.add_parser(
        "report",
        help="rebuild a run's report.html",
        description=(
            "Rebuild report.html (and its PNG figures, and the per-class numbers of "
            "metrics.json) of a run directory, from its files and the data named in its "
            "config.json (the test split is drawn again)."
        ),
        formatter_class=HelpFormatter,
    )
    report.add_argument("run_dir", metavar="DIR", help="a directory written by chainrule train")
    report.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="the data, if it moved (default: the one in config.json)",
    )
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run `chainrule report`.

    Returns:
        0 (problems raise CommandError).
    """
    from chainrule.train import History, predict

    from .config import check_split_info, read_run
    from .rundir import write_json
    from .tables import load_for_run, make_dataset
    from .train import split_rows

    config, model, scaler = read_run(args.run_dir)
    folder = Path(args.run_dir)
    spec = args.data or config.get("data")
    if not spec or "***" in spec:
        raise CommandError(
            f"{folder}: give the run's data with --data (config.json does not hold it)"
        )
    missing = config.get("training", {}).get("missing", "error")
    ds, y = load_for_run(spec, config, with_target=True, missing=missing)
    info = check_split_info(config, str(folder))
    if len(ds) != info["rows"]:
        raise CommandError(
            f"--data {spec}: {len(ds)} rows, but the run was trained on {info['rows']}"
        )
    labels = y if info["stratified"] else None
    _, val_idx, test_idx = split_rows(
        len(ds), info["val_split"], info["test_split"], info["seed"], labels
    )
    rows = test_idx if len(test_idx) else (val_idx if len(val_idx) else np.arange(len(ds)))
    X = scaler.transform(ds.X[rows])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        outputs = np.asarray(predict(model, make_dataset(X, None), batch_size=256).numpy())
    history = History.load(folder / "history.json")
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    summary = config.get("summary") or [["data", spec]]
    per_class = write_report(folder, config, metrics, history, model, outputs, y[rows], summary)
    if per_class:
        metrics["per_class"] = per_class
        write_json(folder / "metrics.json", metrics)
    print(f"report: {folder / 'report.html'}")
    return 0
