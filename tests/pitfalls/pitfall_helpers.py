"""Shared pieces of the pitfall tests: every loss of ``chainrule.nn.losses`` as a table, and a
runner for small scripts in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

import chainrule.core as mx
import chainrule.nn as nn

ROOT = Path(__file__).resolve().parents[2]
L = nn.losses


@dataclass
class Loss:
    """One loss: how to call it, and what its arguments look like.

    ``kind`` is ``"pairwise"`` (arguments of one shape: predictions, targets and, for some,
    a third array), or ``"index"`` (logits or log probabilities with class-index targets).
    """

    name: str
    call: object  # call(*arrays) -> loss
    kind: str
    nargs: int = 2
    class_axis: int = -1  # index losses: where the classes are
    probabilities: bool = False  # index losses that also take probability targets


LOSSES = [
    # MLX's functions
    Loss("mse_loss", L.mse_loss, "pairwise"),
    Loss("l1_loss", L.l1_loss, "pairwise"),
    Loss("smooth_l1_loss", L.smooth_l1_loss, "pairwise"),
    Loss("huber_loss", L.huber_loss, "pairwise"),
    Loss("log_cosh_loss", L.log_cosh_loss, "pairwise"),
    Loss("hinge_loss", L.hinge_loss, "pairwise"),
    Loss("binary_cross_entropy", L.binary_cross_entropy, "pairwise"),
    Loss("kl_div_loss", L.kl_div_loss, "pairwise"),
    # axis=-1: the default axis=1 needs two dimensions, and some fixes leave one
    Loss("cosine_similarity_loss", partial(L.cosine_similarity_loss, axis=-1), "pairwise"),
    Loss("gaussian_nll_loss", L.gaussian_nll_loss, "pairwise", nargs=3),
    Loss("margin_ranking_loss", L.margin_ranking_loss, "pairwise", nargs=3),
    Loss("triplet_loss", L.triplet_loss, "pairwise", nargs=3),
    Loss("cross_entropy", L.cross_entropy, "index", probabilities=True),
    Loss("nll_loss", L.nll_loss, "index"),
    # PyTorch's classes
    Loss("MSELoss", L.MSELoss(), "pairwise"),
    Loss("L1Loss", L.L1Loss(), "pairwise"),
    Loss("SmoothL1Loss", L.SmoothL1Loss(), "pairwise"),
    Loss("HuberLoss", L.HuberLoss(), "pairwise"),
    Loss("BCELoss", L.BCELoss(), "pairwise"),
    Loss("BCEWithLogitsLoss", L.BCEWithLogitsLoss(), "pairwise"),
    Loss("KLDivLoss", L.KLDivLoss(), "pairwise"),
    Loss("CrossEntropyLoss", L.CrossEntropyLoss(), "index", class_axis=1, probabilities=True),
    Loss("NLLLoss", L.NLLLoss(), "index", class_axis=1),
]
BY_NAME = {loss.name: loss for loss in LOSSES}


def values(shape: tuple, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """Values valid for every loss: in (0.1, 0.9), so also probabilities."""
    return np.random.default_rng(seed).uniform(0.1, 0.9, size=shape).astype(dtype)


def labels(shape: tuple, num_classes: int = 3, seed: int = 1) -> np.ndarray:
    """Integer class indices (int64, as NumPy and pandas make them)."""
    return np.random.default_rng(seed).integers(0, num_classes, size=shape)


def binary(shape: tuple, seed: int = 2) -> np.ndarray:
    """0/1 targets as int64."""
    return np.random.default_rng(seed).integers(0, 2, size=shape)


def run_script(code: str, *args: str, tmp_path: Path, timeout: float = 60, **kw):
    """Run ``code`` as a script file in a fresh Python process; returns the CompletedProcess.

    The script runs in ``tmp_path`` with the repository importable, exactly as a user's
    script would (no pytest in the process).
    """
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("PYTHONHASHSEED", None)  # two runs get different hash seeds, as users' runs do
    kw.setdefault("capture_output", True)
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        text=True,
        timeout=timeout,
        **kw,
    )


def check(proc: subprocess.CompletedProcess) -> str:
    """The script's stdout, after checking that it succeeded."""
    assert proc.returncode == 0, f"script failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


__all__ = ["BY_NAME", "LOSSES", "Loss", "binary", "check", "labels", "mx", "run_script", "values"]
