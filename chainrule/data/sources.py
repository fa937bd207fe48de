"""Data sources: CSV, JSON, SQL databases, image folders, NumPy arrays and built-in datasets.

Every tabular source goes through one path: parse the file (pandas, the standard `csv` and
`json` modules, a database driver) into a table, then `_table_to_dataset` checks it and turns
it into float32 features and int64 class indices (classification) or float32 targets
(regression). Problems are reported as `DataError` naming the source, the column and the
row; nothing is silently turned into NaN.

pandas, Pillow, SQLAlchemy, psycopg and scikit-learn are optional (`chainrule[data]`) and are
imported only when a source needs them.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chainrule.core.backend import to_host
from chainrule.data.dataset import Dataset, TensorDataset

__all__ = [
    "BUILTIN_DATASETS",
    "DataError",
    "ImageFolder",
    "TabularDataset",
    "from_csv",
    "from_json",
    "from_numpy",
    "load",
]

Task = Literal["auto", "classification", "regression"]
Missing = Literal["error", "drop", "mean"]

_MISSING = ("error", "drop", "mean")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# Text that means "no value" in a numeric (feature) column, as spreadsheets and R write it.
# A target column keeps these as labels: only an empty cell is a missing target.
_NA_TEXT = frozenset(
    ["", "NA", "N/A", "n/a", "NaN", "nan", "-NaN", "-nan", "NULL", "null", "None", "<NA>", "#N/A"]
)

BUILTIN_DATASETS = ("digits", "iris", "wine", "breast_cancer", "diabetes")

# A numeric target with at most this many distinct whole-number values is read as class labels
# when task="auto"; more than that (ages, prices, the diabetes score) is a regression target.
MAX_AUTO_CLASSES = 20

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
)

_EXTRA_HINT = "pip install 'chainrule[data]'"


class DataError(ValueError):
    """Bad input data: the message names the source, the column or row, and the problem."""


def _require(module: str, purpose: str) -> Any:
    """Imports an optional dependency, or says which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = {"PIL": "Pillow", "sklearn": "scikit-learn", "sqlalchemy": "SQLAlchemy"}.get(
            module, module
        )
        raise ImportError(
            f"{purpose} needs the optional package {package}, which is not installed: {_EXTRA_HINT}"
        ) from e


# --------------------------------------------------------------------------------------------
# The dataset type every tabular source returns
# --------------------------------------------------------------------------------------------


class TabularDataset(TensorDataset):
    """A `TensorDataset` of features `X` and targets `y` that remembers where they came from.

    `ds[i]` is `(x, y)` (or `(x,)` without a target) and `ds.tensors` holds the chainrule
    arrays, as for any `TensorDataset`; `X` and `y` show the same values as NumPy arrays.

    Attributes:
        X: float32 features of shape (n, n_features) (or (n, ...) for `from_numpy`).
        y: int64 class indices (classification), float32 values (regression), or None
            when the source has no target (data to predict on).
        features: the feature column names, in the order of `X`'s columns.
        target: the target column's name (None without a target).
        classes: for classification, the original label of each class index
            (`classes[y[i]]` is row i's label); None for regression.
        task: "classification", "regression", or None without a target.
        source: where the data came from (a file name, a query, a dataset name).
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray | None,
        *,
        features: Sequence[str],
        target: str | None,
        classes: Sequence[Any] | None,
        task: str | None,
        source: str,
    ) -> None:
        """Wraps checked arrays; use the `from_*` functions rather than calling this.

        Args:
            X: float32 features, one row per example.
            y: targets (int64 class indices or float32 values) or None.
            features: feature names.
            target: target name.
            classes: original class labels, index-aligned with the class indices in `y`.
            task: "classification", "regression" or None.
            source: a short description of the origin, used in messages.
        """
        if y is None:
            super().__init__(X)
        else:
            super().__init__(X, y)
        self.features = list(features)
        self.target = target
        self.classes = None if classes is None else list(classes)
        self.task = task
        self.source = source

    @property
    def X(self) -> np.ndarray:
        """The features as a (read-only) NumPy array (a host copy when they are on the GPU)."""
        return to_host(self.tensors[0]._data)

    @property
    def y(self) -> np.ndarray | None:
        """The targets as a (read-only) NumPy array (a host copy when they are on the GPU), or
        None without a target."""
        return to_host(self.tensors[1]._data) if len(self.tensors) > 1 else None

    @property
    def num_classes(self) -> int | None:
        """Number of classes for classification, else None."""
        return None if self.classes is None else len(self.classes)

    def __repr__(self) -> str:
        kind = self.task or "unlabelled"
        extra = f", classes={len(self.classes)}" if self.classes is not None else ""
        return (
            f"TabularDataset({self.source!r}, rows={len(self.X)}, features={len(self.features)}, "
            f"target={self.target!r}, task={kind}{extra})"
        )


# --------------------------------------------------------------------------------------------
# Checking a parsed table and turning it into arrays
# --------------------------------------------------------------------------------------------


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _resolve_columns(
    columns: list[str],
    target: str | int | None,
    features: Sequence[str] | None,
    where: str,
) -> tuple[str | None, list[str]]:
    available = ", ".join(repr(c) for c in columns)
    if target is None:
        target_name = None
    elif isinstance(target, int) and not isinstance(target, bool):
        if not -len(columns) <= target < len(columns):
            raise DataError(
                f"{where}: target column index {target} is out of range for "
                f"{len(columns)} columns ({available})"
            )
        target_name = columns[target]
    else:
        if target not in columns:
            raise DataError(f"{where}: no target column {target!r}; available columns: {available}")
        target_name = target
    if features is None:
        feature_names = [c for c in columns if c != target_name]
    else:
        if isinstance(features, str):
            raise DataError(f"{where}: features must be a list of column names, got {features!r}")
        feature_names = list(features)
        for name in feature_names:
            if name not in columns:
                raise DataError(
                    f"{where}: no feature column {name!r}; available columns: {available}"
                )
        if target_name is not None and target_name in feature_names:
            raise DataError(f"{where}: column {target_name!r} is both the target and a feature")
        if len(set(feature_names)) != len(feature_names):
            raise DataError(f"{where}: features list a column twice: {feature_names}")
    if not feature_names:
        raise DataError(f"{where}: no feature columns left besides the target {target_name!r}")
    return target_name, feature_names


def _numeric_column(
    series: Any, name: str, where: str, row_label: Callable[[int], str]
) -> np.ndarray:
    """float64 values of one column, NaN where a value is missing.

    Raises DataError on text, infinite values, and values float32 cannot hold.
    """
    pd = _require("pandas", "reading tables")
    if pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        # Text, or mixed Python objects (JSON values, Decimal from a database driver).
        raw = series.to_numpy(dtype=object)
        missing = series.isna().to_numpy()
        values = np.empty(len(raw), dtype=np.float64)
        for i, v in enumerate(raw):
            if missing[i] or (isinstance(v, str) and v.strip() in _NA_TEXT):
                values[i] = np.nan
                continue
            try:
                if isinstance(v, bytes | list | dict | tuple):
                    raise TypeError
                values[i] = float(v)
            except OverflowError:  # an integer of hundreds of digits
                raise DataError(
                    f"{where}: value {_short(v)} in column {name!r} at {row_label(i)} is too "
                    "large for float32 (largest 3.4e38)"
                ) from None
            except (TypeError, ValueError):
                raise DataError(
                    f"{where}: column {name!r} is not numeric: {row_label(i)} has "
                    f"{_short(v)} (convert it to numbers, or leave the column out by "
                    f"choosing the feature columns)"
                ) from None
    _check_float32(values, name, where, row_label, "value")
    return values


def _check_float32(
    values: np.ndarray, name: str, where: str, row_label: Callable[[int], str], what: str
) -> None:
    """Refuses infinite values and finite ones that float32 would turn into infinity."""
    with np.errstate(invalid="ignore"):
        big = np.abs(values) > _FLOAT32_MAX
    if big.any():
        i = _first_true(big)
        if np.isinf(values[i]):
            raise DataError(f"{where}: infinite {what} in column {name!r} at {row_label(i)}")
        raise DataError(
            f"{where}: {what} {float(values[i]):g} in column {name!r} at {row_label(i)} is too "
            "large for float32 (largest 3.4e38)"
        )


def _encode_target(
    series: Any,
    name: str,
    task: Task,
    where: str,
    row_label: Callable[[int], str],
) -> tuple[np.ndarray, list[Any] | None, str]:
    """Targets as (y, classes, task): sorted class labels -> int64 indices, or float32 values."""
    pd = _require("pandas", "reading tables")
    missing = series.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{where}: missing target value in column {name!r} at {row_label(_first_true(missing))}"
        )
    numeric = pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
        series.dtype
    )
    if not numeric and task != "classification":
        # text that is all numbers (e.g. from a DB-API driver returning Decimal) still counts
        coerced = pd.to_numeric(series, errors="coerce")
        bad = coerced.isna().to_numpy()
        if not bad.any() and not pd.api.types.is_bool_dtype(series.dtype):
            series, numeric = coerced, True
        elif task == "regression":
            i = _first_true(bad) if bad.any() else 0
            raw = series.to_numpy(dtype=object)[i]
            raise DataError(
                f"{where}: target column {name!r} is not numeric ({row_label(i)} has "
                f"{_short(raw)}), so it cannot be a regression target"
            )
    if numeric:
        values = series.to_numpy(dtype=np.float64)
        _check_float32(values, name, where, row_label, "target value")
        if task == "auto":
            whole = bool(np.all(values == np.round(values)))
            task = (
                "classification"
                if whole and len(np.unique(values)) <= MAX_AUTO_CLASSES
                else "regression"
            )
        if task == "regression":
            return values.astype(np.float32), None, "regression"
        labels, y = np.unique(values, return_inverse=True)
        classes = [int(v) if v == int(v) else float(v) for v in labels]
        return y.astype(np.int64).reshape(-1), classes, "classification"
    raw = series.to_numpy(dtype=object)
    try:
        labels = sorted(set(raw.tolist()))
    except TypeError:  # mixed types (a JSON column with numbers and text): order by text
        labels = sorted(set(raw.tolist()), key=str)
    index = {label: i for i, label in enumerate(labels)}
    y = np.fromiter((index[v] for v in raw), dtype=np.int64, count=len(raw))
    return y, labels, "classification"


def _table_to_dataset(
    frame: Any,
    target: str | int | None,
    features: Sequence[str] | None,
    task: Task,
    where: str,
    row_label: Callable[[int], str],
    missing: Missing = "error",
) -> TabularDataset:
    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    if missing not in _MISSING:
        raise ValueError(f"missing must be 'error', 'drop' or 'mean', got {missing!r}")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise DataError(f"{where}: column name {dup!r} appears more than once")
    if not columns:
        raise DataError(f"{where}: empty table: no columns")
    if len(frame) == 0:
        raise DataError(f"{where}: empty table: no data rows")
    target_name, feature_names = _resolve_columns(columns, target, features, where)
    X = np.empty((len(frame), len(feature_names)), dtype=np.float64)
    for j, name in enumerate(feature_names):
        X[:, j] = _numeric_column(frame[name], name, where, row_label)
    holes = np.isnan(X)
    no_target = (
        frame[target_name].isna().to_numpy()
        if target_name is not None
        else np.zeros(len(frame), dtype=bool)
    )
    if missing == "error" and holes.any():
        i, j = np.argwhere(holes)[0]
        raise DataError(
            f"{where}: missing value in column {feature_names[j]!r} at {row_label(int(i))} "
            "(fill it in, or drop such rows / fill with the column mean: "
            "missing='drop' or 'mean', --missing in the command)"
        )
    if missing == "mean" and holes.any():
        for j in np.flatnonzero(holes.any(axis=0)):
            present = X[~holes[:, j], j]
            if not len(present):
                raise DataError(
                    f"{where}: column {feature_names[j]!r} has no values to take a mean of"
                )
            X[holes[:, j], j] = present.mean()
        holes = np.zeros_like(holes)
    if missing != "error":  # rows with a hole left (drop) or without a target go
        keep = np.flatnonzero(~(holes.any(axis=1) | no_target))
        if len(keep) < len(frame):
            if not len(keep):
                raise DataError(f"{where}: every row has a missing value (missing={missing!r})")
            X, frame = X[keep], frame.iloc[keep].reset_index(drop=True)
            original = row_label
            row_label = lambda i: original(int(keep[i]))  # noqa: E731
    X = X.astype(np.float32)
    if target_name is None:
        return TabularDataset(
            X, None, features=feature_names, target=None, classes=None, task=None, source=where
        )
    y, classes, task = _encode_target(frame[target_name], target_name, task, where, row_label)
    return TabularDataset(
        X, y, features=feature_names, target=target_name, classes=classes, task=task, source=where
    )


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, not a file")
    return p


def from_csv(
    path: str | os.PathLike,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    task: Task = "auto",
    delimiter: str = ",",
    missing: Missing = "error",
) -> TabularDataset:
    """Reads a CSV file with a header row into a dataset.

    Args:
        path: the CSV file (UTF-8, first line = column names).
        target: the target column's name, or its position (default -1: the last column),
            or None for data without a target (for prediction).
        features: the feature columns (default: every column except the target).
        task: "classification", "regression", or "auto": text labels and whole numbers
            with at most 20 distinct values are classes, other numbers are regression.
        delimiter: the field separator.
        missing: what to do with a missing feature value (an empty cell, or NA, NaN, null,
            ... in a numeric column): "error" (default: refuse, naming the cell), "drop" the
            row, or fill with the column's "mean". A row whose target is empty is dropped
            under "drop" and "mean". In the target column only an empty cell is missing (a
            class may be called "NA").

    Returns:
        A `TabularDataset`; for classification `y` holds indices into `classes`.

    Raises:
        DataError: with the file, line and column, for a missing target column, a
            non-numeric feature, a missing value, an empty file or a ragged row.
    """
    pd = _require("pandas", "from_csv")
    p = _check_file(path)
    where = str(p)
    # A first pass with the csv module finds ragged rows (pandas pads short rows with NaN and
    # turns a longer first row into an index) and maps each record to its line in the file.
    lines: list[int] = []
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=delimiter)
        header = None
        start = 1
        try:
            for record in reader:
                if record:
                    if header is None:
                        header = record
                    elif len(record) != len(header):
                        raise DataError(
                            f"{where} line {start}: ragged row: {len(record)} fields, but the "
                            f"header has {len(header)} ({', '.join(header)})"
                        )
                    else:
                        lines.append(start)
                start = reader.line_num + 1
        except csv.Error as e:
            raise DataError(f"{where} line {reader.line_num}: cannot parse CSV: {e}") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if header is None:
        raise DataError(f"{where}: empty file: no header row and no data")
    for name in header:  # pandas would rename a repeated column to "name.1"
        if header.count(name) > 1:
            raise DataError(f"{where}: column name {name!r} appears more than once")
    try:
        frame = pd.read_csv(
            p,
            sep=delimiter,
            encoding="utf-8-sig",
            skip_blank_lines=True,
            keep_default_na=False,
            na_values=[""],
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = " (a quote that is never closed?)" if "EOF inside string" in text else ""
        raise DataError(f"{where}: cannot parse CSV: {text}{hint}") from None
    if len(lines) == len(frame):
        row_label = lambda i: f"line {lines[i]}"  # noqa: E731
    else:  # the two parsers disagree on what a blank line is; fall back to data row numbers
        row_label = lambda i: f"data row {i + 1}"  # noqa: E731
    return _table_to_dataset(frame, target, features, task, where, row_label, missing)


# --------------------------------------------------------------------------------------------
# JSON and JSON Lines
# --------------------------------------------------------------------------------------------


def _records_to_frame(records: list[Any], where: str, label: Callable[[int], str]) -> Any:
    pd = _require("pandas", "from_json")
    if not records:
        raise DataError(f"{where}: empty table: no records")
    keys = None
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(
                f"{where}: {label(i)} is {type(record).__name__} {_short(record)}, "
                f'expected an object like {{"column": value, ...}}'
            )
        if keys is None:
            keys = list(record)
            key_set = set(keys)
        elif record.keys() != key_set:
            missing = [k for k in keys if k not in record]
            extra = [k for k in record if k not in key_set]
            problem = "; ".join(
                part
                for part in (
                    f"missing {', '.join(map(repr, missing))}" if missing else "",
                    f"extra {', '.join(map(repr, extra))}" if extra else "",
                )
                if part
            )
            raise DataError(
                f"{where}: ragged records: {label(i)} has different keys from the first "
                f"record ({problem})"
            )
    return pd.DataFrame.from_records(records, columns=keys)


def from_json(
    path: str | os.PathLike,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    task: Task = "auto",
    missing: Missing = "error",
) -> TabularDataset:
    """Reads JSON records into a dataset.

    Accepted layouts: an array of objects (`[{"x": 1, "y": 0}, ...]`), JSON Lines (one object
    per line; `.jsonl`/`.ndjson` or any file with several top-level values), or an object of
    equal-length columns (`{"x": [1, 2], "y": [0, 1]}`).

    Args:
        path: the JSON file.
        target: the target key, or its position among the keys (default -1: the last),
            or None for data without a target.
        features: the feature keys (default: every key except the target).
        task: "classification", "regression" or "auto" (see `from_csv`).
        missing: what to do with a missing (null) value: "error", "drop" or "mean" (see
            `from_csv`).

    Returns:
        A `TabularDataset`.

    Raises:
        DataError: naming the file and the record (or line) for invalid JSON, records with
            different keys, non-numeric features, missing values or an empty file.
    """
    pd = _require("pandas", "from_json")
    p = _check_file(path)
    where = str(p)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not text.strip():
        raise DataError(f"{where}: empty file")
    lines_mode = p.suffix.lower() in (".jsonl", ".ndjson")
    data = None
    if not lines_mode:
        try:
            data = json.loads(text)
        except RecursionError:
            raise DataError(f"{where}: invalid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError, or an integer too long to parse
            if not isinstance(e, json.JSONDecodeError):
                raise DataError(f"{where}: invalid JSON: {e}") from None
            if e.msg != "Extra data":
                raise DataError(
                    f"{where} line {e.lineno} column {e.colno}: invalid JSON: {e.msg}"
                ) from None
            lines_mode = True  # several top-level values: JSON Lines
    if lines_mode:
        records, line_of = [], []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{where} line {n} column {e.colno}: invalid JSON: {e.msg}"
                    ) from None
                except ValueError as e:  # an integer too long to parse
                    raise DataError(f"{where} line {n}: invalid JSON: {e}") from None
                except RecursionError:
                    raise DataError(f"{where} line {n}: invalid JSON: nested too deeply") from None
                line_of.append(n)
        label = lambda i: f"line {line_of[i]}"  # noqa: E731
        frame = _records_to_frame(records, where, label)
    elif isinstance(data, list):
        label = lambda i: f"record [{i}]"  # noqa: E731
        frame = _records_to_frame(data, where, label)
    elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        lengths = {k: len(v) for k, v in data.items()}
        first = next(iter(data))
        for k, n in lengths.items():
            if n != lengths[first]:
                raise DataError(
                    f"{where}: ragged columns: {k!r} has {n} values but {first!r} has "
                    f"{lengths[first]}"
                )
        label = lambda i: f"record [{i}]"  # noqa: E731
        frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in data.items()})
        frame = frame.infer_objects()
    else:
        raise DataError(
            f"{where}: expected an array of records, JSON Lines, or an object of columns; "
            f"found a top-level {type(data).__name__}"
        )
    return _table_to_dataset(frame, target, features, task, where, label, missing)


def hide_password(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages).

    Args:
        url: a database URL.

    Returns:
        The URL, safe to print.
    """
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# --------------------------------------------------------------------------------------------
# NumPy arrays and built-in datasets
# --------------------------------------------------------------------------------------------


def from_numpy(
    X: Any,
    y: Any = None,
    *,
    features: Sequence[str] | None = None,
    target: str = "target",
    classes: Sequence[Any] | None = None,
    task: Task = "auto",
) -> TabularDataset:
    """Wraps arrays as a dataset, checking them like the file sources do.

    Integer labels are kept as they are (class indices; `classes` defaults to
    `range(max + 1)`); text labels are mapped to indices of their sorted values; float targets
    are regression targets unless `task="classification"`.

    Args:
        X: features, shape (n, ...); converted to float32.
        y: targets, shape (n,), or None.
        features: names of X's columns (default "x0", "x1", ...; 2-D X only).
        target: the target's name.
        classes: class labels for integer `y` (their count must exceed `y.max()`).
        task: "classification", "regression" or "auto".

    Returns:
        A `TabularDataset`.

    Raises:
        DataError: for mismatched lengths, NaN or infinite values, or negative labels.
    """
    if task not in ("auto", "classification", "regression"):
        raise ValueError(f"task must be 'auto', 'classification' or 'regression', got {task!r}")
    if hasattr(X, "numpy") and not isinstance(X, np.ndarray):
        X = X.numpy()
    X = np.asarray(X)
    if X.ndim == 0 or len(X) == 0:
        raise DataError(f"from_numpy: X must hold at least one example, got shape {X.shape}")
    if X.ndim == 1:
        X = X[:, None]
    try:
        Xf = X.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise DataError(f"from_numpy: X is not numeric (dtype {X.dtype}): {e}") from None
    bad = ~np.isfinite(Xf)
    if bad.any():
        idx = np.argwhere(bad)[0]
        kind = "NaN" if np.isnan(Xf[tuple(idx)]) else "infinite value"
        raise DataError(f"from_numpy: {kind} in X at row {idx[0]}, index {tuple(idx[1:].tolist())}")
    if features is None:
        features = [f"x{j}" for j in range(Xf.shape[1])] if Xf.ndim == 2 else []
    elif Xf.ndim != 2 or len(features) != Xf.shape[1]:
        raise DataError(f"from_numpy: {len(features)} feature names for X of shape {Xf.shape}")
    if y is None:
        return TabularDataset(
            Xf, None, features=features, target=None, classes=None, task=None, source="arrays"
        )
    if hasattr(y, "numpy") and not isinstance(y, np.ndarray):
        y = y.numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(Xf):
        raise DataError(
            f"from_numpy: y must have shape ({len(Xf)},) to match X {Xf.shape}, got {y.shape}"
        )
    if y.dtype.kind in "iub" and task != "regression":
        yi = y.astype(np.int64)
        if (yi < 0).any():
            i = _first_true(yi < 0)
            raise DataError(f"from_numpy: class labels must be >= 0; y[{i}] = {yi[i]}")
        n = int(yi.max()) + 1
        if classes is None:
            classes = list(range(n))
        elif len(classes) < n:
            raise DataError(f"from_numpy: {len(classes)} classes given but y has label {n - 1}")
        return TabularDataset(
            Xf,
            yi,
            features=features,
            target=target,
            classes=classes,
            task="classification",
            source="arrays",
        )
    if y.dtype.kind in "fiub":
        yf = y.astype(np.float64)
        bad = ~np.isfinite(yf)
        if bad.any():
            raise DataError(f"from_numpy: y[{_first_true(bad)}] is {yf[_first_true(bad)]}")
        if task == "classification":
            labels, yi = np.unique(yf, return_inverse=True)
            return TabularDataset(
                Xf,
                yi.astype(np.int64),
                features=features,
                target=target,
                classes=classes if classes is not None else labels.tolist(),
                task="classification",
                source="arrays",
            )
        return TabularDataset(
            Xf,
            yf.astype(np.float32),
            features=features,
            target=target,
            classes=None,
            task="regression",
            source="arrays",
        )
    if task == "regression":
        raise DataError(f"from_numpy: y of dtype {y.dtype} cannot be a regression target")
    labels = sorted(set(y.tolist()))
    index = {label: i for i, label in enumerate(labels)}
    yi = np.fromiter((index[v] for v in y.tolist()), dtype=np.int64, count=len(y))
    return TabularDataset(
        Xf,
        yi,
        features=features,
        target=target,
        classes=labels,
        task="classification",
        source="arrays",
    )


def _load_builtin(name: str) -> TabularDataset:
    datasets = _require("sklearn.datasets", f"the built-in dataset {name!r}")
    bunch = getattr(datasets, f"load_{name}")()
    X = np.asarray(bunch.data, dtype=np.float32)
    features = [str(f) for f in bunch.feature_names]
    if name == "diabetes":
        y, classes, task = np.asarray(bunch.target, dtype=np.float32), None, "regression"
    else:
        y = np.asarray(bunch.target, dtype=np.int64)
        classes, task = [str(c) for c in bunch.target_names], "classification"
    return TabularDataset(
        X, y, features=features, target="target", classes=classes, task=task, source=name
    )


def load(
    name: str | os.PathLike,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    task: Task = "auto",
    missing: Missing = "error",
) -> TabularDataset:
    """Loads a built-in dataset by name, or any source the `chainrule` command accepts.

    Built-in (scikit-learn's bundled copies, no download): "digits" (8x8 images, 10
    classes), "iris" (3 classes), "wine" (3 classes), "breast_cancer" (2 classes) and
    "diabetes" (regression).

    Other sources: a `.csv` file, a `.json`/`.jsonl`/`.ndjson` file, or a database URL with
    `?table=NAME` or `?query=SELECT...` (`sqlite:///data.db?table=t`,
    `postgresql://user@host/db?table=t`). Databases are read read-only; a table name is
    quoted, never run as SQL; everything after `query=` (which must come last) is the SQL
    exactly as typed, `+`, `&`, `#` and `%` included (see `chainrule.data.sql`).

    Args:
        name: the dataset name, file path or URL.
        target: for files and databases, the target column (default: the last column);
            ignored for built-in datasets.
        features: for files and databases, the feature columns (default: all but the target).
        task: for files and databases, "classification", "regression" or "auto".
        missing: for files and databases, what to do with missing values: "error",
            "drop" or "mean" (see `from_csv`).

    Returns:
        A `TabularDataset`.

    Raises:
        ValueError: for an unknown name or an unsupported file type (`DataError`, a
            `ValueError`, for bad data).
    """
    spec = os.fspath(name)
    if spec in BUILTIN_DATASETS:
        return _load_builtin(spec)
    if "://" in spec:
        from chainrule.data.sql import read_url

        return read_url(spec, target, features, task, missing)
    suffix = Path(spec).suffix.lower()
    if suffix in (".csv", ".tsv", ".txt"):
        delimiter = "\t" if suffix == ".tsv" else ","
        return from_csv(spec, target, features, task, delimiter=delimiter, missing=missing)
    if suffix in (".json", ".jsonl", ".ndjson"):
        return from_json(spec, target, features, task, missing)
    if suffix in (".db", ".sqlite", ".sqlite3"):
        raise ValueError(f"{spec}: for a SQLite file write sqlite:///{spec}?table=NAME")
    raise ValueError(
        f"unknown dataset {spec!r}: use one of {', '.join(BUILTIN_DATASETS)}, a .csv or .json "
        "file, or a database URL such as sqlite:///data.db?table=NAME"
    )


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


class ImageFolder(Dataset):
    """Images stored one sub-folder per class: `root/cat/1.png`, `root/dog/7.jpg`, ...

    Class names are the sorted sub-folder names and map to indices 0, 1, ...; each item is
    `(image, class_index)`, the image read with Pillow as a float32 array of shape
    (height, width, channels) with values in [0, 1] (channels-last, as MLX's convolutions
    expect), then passed through `transform` if one is given.

    Attributes:
        root: the folder.
        classes: sorted class names.
        class_to_idx: class name -> index.
        samples: list of (path, class index), sorted by class then file name.
        targets: the class index of every sample.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        transform: Callable[[np.ndarray], Any] | None = None,
        mode: Literal["RGB", "L", "RGBA"] = "RGB",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
    ) -> None:
        """Indexes the folder (images are read lazily, one per `__getitem__`).

        Args:
            root: the folder with one sub-folder per class.
            transform: applied to each image array (e.g. resizing, flattening, augmenting).
            mode: Pillow mode every image is converted to: "RGB" (3 channels, default),
                "L" (grey, 1 channel) or "RGBA".
            extensions: file name endings counted as images (case-insensitive).

        Raises:
            FileNotFoundError: if `root` does not exist.
            DataError: if there are no class folders or a class folder holds no image.
        """
        _require("PIL.Image", "ImageFolder")
        if mode not in ("RGB", "L", "RGBA"):
            raise ValueError(f"ImageFolder: mode must be 'RGB', 'L' or 'RGBA', got {mode!r}")
        self.root = Path(root)
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root}: no such folder")
        if not self.root.is_dir():
            raise DataError(f"{self.root}: is a file; ImageFolder needs a folder of class folders")
        self.transform = transform
        self.mode = mode
        exts = tuple(e.lower() for e in extensions)
        self.classes = sorted(
            d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")
        )
        if not self.classes:
            raise DataError(
                f"{self.root}: no class folders; put each class's images in its own sub-folder"
            )
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples: list[tuple[str, int]] = []
        for c in self.classes:
            files = sorted(
                f
                for f in (self.root / c).rglob("*")
                if f.is_file() and f.name.lower().endswith(exts) and not f.name.startswith(".")
            )
            if not files:
                raise DataError(
                    f"{self.root / c}: class folder {c!r} holds no images ({', '.join(exts)})"
                )
            self.samples.extend((str(f), self.class_to_idx[c]) for f in files)
        self.targets = [t for _, t in self.samples]

    def __len__(self) -> int:
        """Number of images."""
        return len(self.samples)

    def load_image(self, path: str) -> np.ndarray:
        """Reads one image as float32 (H, W, C) in [0, 1].

        Args:
            path: the image file.

        Returns:
            The image array.

        Raises:
            DataError: naming the file if Pillow cannot read it.
        """
        Image = importlib.import_module("PIL.Image")
        try:
            with Image.open(path) as im:
                im = im.convert(self.mode)
                a = np.asarray(im, dtype=np.float32)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: cannot read the image: {e}") from None
        if a.ndim == 2:
            a = a[:, :, None]
        return a / np.float32(255.0)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        """The image at `index` (after `transform`) and its class index.

        Args:
            index: a position in `samples` (negative counts from the end).

        Returns:
            (image, class_index).
        """
        path, label = self.samples[index]
        image = self.load_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, images={len(self)}, classes={self.classes})"
