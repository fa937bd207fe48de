"""examples/torch/ddp.py (pytorch/examples' DDP style) on 2 processes under mpiexec trains
exactly like one process on the same global batches, and is a PyTorch program: with only its
imports changed, real PyTorch (one process, and two under torchrun) prints the same losses
from the same starting weights."""

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


def _free_port() -> str:
    with socket.socket() as s:  # a free port for PyTorch's env:// rendezvous
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_the_example_is_a_pytorch_program_that_trains_alike(tmp_path):
    """With only its imports changed the example is a PyTorch program; from chainrule's
    starting weights, real PyTorch prints the same losses (the data and the sampler's order
    are PyTorch's to the index), in one process and in two under torchrun."""
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
    args = ["--steps", "16", "--batch_size", "64"]
    ours = _one_process([*args, "--save-init", "init.pt"], tmp_path)
    theirs = _one_process(
        [*args, "--init-weights", "init.pt"],
        tmp_path,
        source,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=_free_port(),
    )
    assert theirs["world_size"] == "1"
    for name in ("first_loss", "last_loss"):
        assert float(theirs[name]) == pytest.approx(float(ours[name]), rel=1e-5), name
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run(
        [str(torchrun), "--nproc-per-node", "2", "--master-port", _free_port(), str(source)]
        + ["--steps", "16", "--batch_size", "32", "--init-weights", "init.pt"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # (PyTorch's gloo sometimes aborts a rank while it shuts down, after training: "terminate
    # called without an active exception"; what rank 0 printed is what is compared.)
    two = dict(LINE.findall(proc.stdout))
    assert two.get("world_size") == "2", proc.stdout + proc.stderr
    for name in ("first_loss", "last_loss"):
        assert float(two[name]) == pytest.approx(float(ours[name]), rel=1e-5), name
