"""A run's config.json: what `chainrule evaluate` and `predict` need to rebuild the model, and
the checks that turn a damaged or hand-edited file into one line naming what is wrong."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from .errors import CommandError, one_line
from .model import ACTIVATIONS, MAX_PARAMETERS, build_model, check_model_size
from .rundir import recover_overwrite

__all__ = ["CONFIG_FORMAT", "RUN_FILES", "read_run", "check_config", "check_split_info"]

CONFIG_FORMAT = "chainrule.cli.run/1"
RUN_FILES = ("model.safetensors", "config.json", "history.json", "history.png", "metrics.json")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # a 400-digit integer
        return False


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "...(" + str(len(text)) + " characters)"


def check_config(config: Any, where: Path) -> None:
    """Check that a parsed config.json holds a buildable model and its scaling.

    Args:
        config: the parsed JSON.
        where: the file, for messages.

    Raises:
        CommandError: naming the first missing or bad entry.
    """

    def bad(what: str) -> CommandError:
        return CommandError(f"{where}: {what}; the file is damaged or was edited by hand")

    if not isinstance(config, dict) or config.get("format") != CONFIG_FORMAT:
        raise CommandError(f"{where}: not a config.json written by chainrule train")
    if isinstance(config.get("input"), dict) and config["input"].get("kind") == "image":
        from .images import check_image_config

        check_image_config(config, where)
        if config["model"].get("kind", "mlp") != "mlp":
            return
    model = config.get("model")
    if not isinstance(model, dict):
        raise bad("no 'model' entry (the network's layer sizes)")
    for key in ("input_dim", "output_dim"):
        value = model.get(key)
        if not _is_int(value) or not 1 <= value <= MAX_PARAMETERS:
            raise bad(
                f"model.{key} must be a whole number from 1 to {MAX_PARAMETERS:,}, got "
                f"{_shown(value)}"
            )
    hidden = model.get("hidden")
    if not isinstance(hidden, list) or not all(
        _is_int(h) and 1 <= h <= MAX_PARAMETERS for h in hidden
    ):
        raise bad(
            f"model.hidden must be a list of layer sizes from 1 to {MAX_PARAMETERS:,}, "
            f"got {_shown(hidden)}"
        )
    if model.get("activation") not in ACTIVATIONS:
        raise bad(
            f"unknown activation {_shown(model.get('activation'))} "
            f"(known: {', '.join(ACTIVATIONS)})"
        )
    dropout = model.get("dropout")
    if not _finite_number(dropout) or not 0 <= dropout < 1:
        raise bad(f"model.dropout must be in [0, 1), got {_shown(dropout)}")
    check_model_size(model["input_dim"], hidden, model["output_dim"], str(where))
    task = config.get("task")
    if task not in ("classification", "regression"):
        raise bad(f"task must be 'classification' or 'regression', got {_shown(task)}")
    features = config.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise bad("no 'features' list (the input column names)")
    if "input" in config:  # an MLP on images: the pixels are the features, scaled per channel
        return
    if len(features) != model["input_dim"]:
        raise bad(f"{len(features)} features for a model of {model['input_dim']} inputs")
    if not (config.get("target") is None or isinstance(config.get("target"), str)):
        raise bad(f"target must be a column name, got {_shown(config.get('target'))}")
    if task == "classification":
        classes = config.get("classes")
        if not isinstance(classes, list) or not classes:
            raise bad("no classes listed for a classification run")
        if not all(isinstance(c, str | int | float | bool) for c in classes):
            raise bad("classes must be labels (text or numbers)")
        if len(classes) != model["output_dim"]:
            raise bad(f"{len(classes)} classes for a model of {model['output_dim']} outputs")
    elif model["output_dim"] != 1:
        raise bad(f"a regression model has 1 output, not {model['output_dim']}")
    scaler = config.get("scaler")
    if not isinstance(scaler, dict):
        raise bad("no 'scaler' entry (the feature means and standard deviations)")
    for key in ("mean", "std"):
        values = scaler.get(key)
        if not isinstance(values, list) or len(values) != model["input_dim"]:
            raise bad(f"scaler.{key} must list {model['input_dim']} numbers")
        if not all(_finite_number(v) for v in values):
            raise bad(f"scaler.{key} holds a value that is not a finite number")


def check_split_info(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The `split` entry of a config (for `evaluate --split`), checked.

    Args:
        config: a checked config.
        where: the run directory, for messages.

    Returns:
        The entry: `rows`, `val_split`, `test_split`, `seed`, `stratified`.

    Raises:
        CommandError: if it is missing or malformed.
    """
    info = config.get("split")
    ok = (
        isinstance(info, dict)
        and _is_int(info.get("rows"))
        and info["rows"] >= 0
        and all(
            _finite_number(info.get(k)) and 0 <= info[k] < 1 for k in ("val_split", "test_split")
        )
        and _is_int(info.get("seed"))
        and info["seed"] >= 0
        and isinstance(info.get("stratified"), bool)
    )
    if not ok:
        raise CommandError(
            f"{where}/config.json: no valid 'split' entry (rows, val_split, test_split, seed, "
            "stratified), so --split cannot repeat the training split; use --split all"
        )
    return info


def read_run(run_dir: str) -> tuple[dict[str, Any], Any, Any]:
    """A run's checked config, its model with the trained weights (in eval mode), its scaler.

    An `--overwrite` of this run that was interrupted between its two renames is finished
    first (the old run is put back).

    Args:
        run_dir: the directory `chainrule train` wrote.

    Returns:
        (config, model, `chainrule.data.Standardizer`).

    Raises:
        CommandError: for a missing or damaged directory, config.json or weights file.
    """
    from chainrule.data import Standardizer

    path = Path(run_dir)
    note = recover_overwrite(path)
    if note:
        print(f"chainrule: {note}", file=sys.stderr)
    config_path = path / "config.json"
    if not path.is_dir():
        raise CommandError(f"{path}: no such run directory")
    if not config_path.is_file():
        raise CommandError(f"{path}: not a run directory (no config.json)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:  # ValueError: also a >4300-digit integer
        raise CommandError(f"{config_path}: not valid JSON: {one_line(e)}") from None
    except OSError as e:
        raise CommandError(f"{config_path}: cannot read it: {e.strerror or e}") from None
    check_config(config, config_path)
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise CommandError(f"{path}: the weights file model.safetensors is missing")
    model = build_model(config["model"])
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError, KeyError, TypeError) as e:  # a bad header, wrong shapes...
        message = one_line(e)
        if weights.name not in message:
            message = f"{weights}: {message}"
        raise CommandError(f"cannot load the weights: {message}") from None
    model.eval()
    if "input" in config:  # an image run: per-channel scaling (flattened for an MLP)
        from .images import ImageScaler

        info = config["input"]
        flatten = config["model"].get("kind", "mlp") == "mlp"
        return config, model, ImageScaler(info["mean"], info["std"], flatten)
    scaler = Standardizer(config["scaler"]["mean"], config["scaler"]["std"])
    return config, model, scaler
