"""MLX's sharded linear layers across two real processes (``mpiexec``), against the full
layers. The same layers in one process are compared with real MLX in test_oracle_layers.py."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

from chainrule.distributed.launch import find_mpiexec, mpiexec_command

SCRIPT = Path(__file__).resolve().parent / "sharded_layers_script.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or find_mpiexec() is None,
    reason="needs mpi4py and mpiexec (pip install 'chainrule[distributed]')",
)


@pytest.fixture(scope="module")
def run() -> subprocess.CompletedProcess:
    """The script, once, on two processes."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["OMPI_MCA_btl_tcp_if_include"] = "lo"
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = mpiexec_command(2, [str(SCRIPT)])
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def test_sharded_layers_equal_the_full_layers_on_two_processes(run) -> None:
    """Outputs and gradients of an all-to-sharded then sharded-to-all pair, dense and
    quantized, equal the unsharded layers' on every rank."""
    assert run.returncode == 0, run.stdout + run.stderr
    oks = sorted(line for line in run.stdout.splitlines() if line.startswith("ok"))
    assert oks == ["ok 0", "ok 1"], run.stdout


def test_all_sum_vjp_passes_the_cotangent_through_as_mlx(run) -> None:
    """d/dx all_sum(x).sum() is 1 on every rank in MLX (not the group's size)."""
    assert run.returncode == 0, run.stdout + run.stderr
    values = [
        float(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("all_sum_vjp")
    ]
    assert values == [1.0, 1.0], values
