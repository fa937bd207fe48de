"""examples/torch/ddp.py (pytorch/examples' DDP style) on 2 processes under mpiexec trains
exactly like one process on the same global batches, and is a PyTorch program: with only its
imports changed, real PyTorch runs it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi_helpers import requires_mpi, run_mpi_program

import chainrule.torch as torch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "torch" / "ddp.py"
LINE = re.compile(r"^(\w+) (\S+)$", re.MULTILINE)


def _one_process(args: list[str], cwd: Path, source: Path = EXAMPLE, **env: str) -> dict:
    environ = dict(os.environ, RANK="0", WORLD_SIZE="1", OPENBLAS_NUM_THREADS="1", **env)
    proc = subprocess.run(
        [sys.executable, str(source), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return dict(LINE.findall(proc.stdout))


@requires_mpi
def test_two_processes_train_like_one_on_the_same_global_batches(tmp_path):
    one = _one_process(["--steps", "24", "--batch_size", "64", "--save", "one.pt"], tmp_path)
    run = run_mpi_program(
        [str(EXAMPLE), "--steps", "24", "--batch_size", "32", "--save", "two.pt"], cwd=tmp_path
    )
    assert run.returncode == 0, run.output
    two = dict(LINE.findall(run.stdout))
    assert one["world_size"] == "1" and two["world_size"] == "2"
    assert one["epochs"] == two["epochs"] == "3"  # 512 examples, 8 global batches per epoch
    for name in ("first_loss", "last_loss"):
        assert float(two[name]) == pytest.approx(float(one[name]), rel=1e-5), name
    assert float(one["last_loss"]) < 0.2 * float(one["first_loss"])
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert list(a) == list(b) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for k in a:
        np.testing.assert_allclose(b[k].numpy(), a[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_the_example_is_a_pytorch_program(tmp_path):
    pytest.importorskip("torch")
    source = tmp_path / "ddp_pytorch.py"
    text = EXAMPLE.read_text(encoding="utf-8")
    assert re.findall(r"^(?:import|from) (\S+)", text, re.MULTILINE) == [
        "argparse",
        "os",
        "chainrule.torch",
        "chainrule.torch.nn.functional",
        "chainrule.torch.distributed",
        "chainrule.torch.nn.parallel",
        "chainrule.torch.utils.data",
        "chainrule.torch.utils.data.distributed",
    ]
    source.write_text(text.replace("chainrule.torch", "torch"), encoding="utf-8")
    with socket.socket() as s:  # a free port for PyTorch's env:// rendezvous
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    out = _one_process(
        ["--steps", "16", "--batch_size", "64"],
        tmp_path,
        source,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=port,
    )
    assert out["world_size"] == "1"
    assert float(out["last_loss"]) < 0.5 * float(out["first_loss"])
