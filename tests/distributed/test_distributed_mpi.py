"""Data parallelism on 2 real processes: ``mpiexec -n 2`` runs the scripts of ``scripts/``.

Skipped (with the reason) when mpi4py or mpiexec is missing; set CHAINRULE_REQUIRE_MPI=1 to
make that an error instead (CI). Each run is killed and fails after ``TIME_LIMIT`` seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from mpi_helpers import TIME_LIMIT, load_script, requires_mpi, run_mpi, run_mpi_program

pytestmark = requires_mpi

train_equal = load_script("train_equal")
CONFIGS = train_equal.CONFIGS
EPOCHS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Every configuration of scripts/train_equal.py trained on 2 processes."""
    out = tmp_path_factory.mktemp("data_parallel")
    run = run_mpi("train_equal.py", out)
    assert run.returncode == 0, run.output
    assert "rank 0 of 2 done" in run.stdout and "rank 1 of 2 done" in run.stdout
    return out


def _arrays(out, name, rank):
    with np.load(out / f"{name}-rank{rank}.npz") as f:
        return {k: f[k] for k in f.files}


def _record(out, name, rank):
    return json.loads((out / f"{name}-rank{rank}.json").read_text())


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_rank_ends_with_identical_parameters(trained, name):
    a, b = _arrays(trained, name, 0), _arrays(trained, name, 1)
    assert a.keys() == b.keys() and a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k} differs between ranks")
    # every rank reports the same (global) figures
    assert _record(trained, name, 0)["history"] == _record(trained, name, 1)["history"]


@pytest.mark.parametrize("name", [n for n, c in CONFIGS.items() if c["same_as_one"]])
def test_equals_one_process_on_the_same_global_batches(trained, name):
    model, history, _ = train_equal.train(name, False)
    reference = train_equal.arrays(model)
    got = _arrays(trained, name, 0)
    assert got.keys() == reference.keys()
    for k in reference:
        np.testing.assert_allclose(got[k], reference[k], rtol=0, atol=1e-5, err_msg=f"{name}: {k}")
    figures = _record(trained, name, 0)["history"]
    assert figures.keys() == history.history.keys()
    for k, values in history.history.items():
        np.testing.assert_allclose(figures[k], values, rtol=1e-5, atol=1e-6, err_msg=k)


def test_files_are_written_by_rank_0_only(trained):
    for name in CONFIGS:
        saved0 = _record(trained, name, 0)["saved"]
        assert saved0 == [str(trained / f"{name}-ckpt.safetensors")] * EPOCHS
        assert _record(trained, name, 1)["saved"] == []  # ModelCheckpoint skipped on rank 1
        assert (trained / f"{name}-ckpt.safetensors").is_file()
        assert json.loads((trained / f"{name}-history.json").read_text())["epoch"] == [0, 1, 2]
    leftovers = [p.name for p in trained.iterdir() if ".tmp" in p.name or p.name.startswith(".")]
    assert leftovers == []


def test_each_rank_sees_a_disjoint_shard_every_sample_once_per_epoch(tmp_path):
    run = run_mpi("shards.py", tmp_path)
    assert run.returncode == 0, run.output
    ranks = [json.loads((tmp_path / f"shards-rank{r}.json").read_text()) for r in (0, 1)]

    # fit's split of the global batches: disjoint, and together every sample exactly once
    for epoch in range(EPOCHS):
        a, b = ranks[0]["fit"][epoch], ranks[1]["fit"][epoch]
        assert not set(a) & set(b), f"epoch {epoch}: ranks share samples"
        assert sorted(a + b) == list(range(45)), f"epoch {epoch}: not every sample once"
        assert abs(len(a) - len(b)) <= 7
    assert ranks[0]["fit"][0] != ranks[0]["fit"][1]  # reshuffled between epochs

    # DistributedSampler: with 44 samples, disjoint halves covering everything, reshuffled
    for epoch in range(EPOCHS):
        a, b = ranks[0]["sampler44"][epoch], ranks[1]["sampler44"][epoch]
        assert len(a) == len(b) == 22
        assert sorted(a + b) == list(range(44))
    assert ranks[0]["sampler44"][0] != ranks[0]["sampler44"][1]
    # with 45, padded to 46 (equal steps on both ranks): one sample repeated, none missing
    for epoch in range(EPOCHS):
        a, b = ranks[0]["sampler45"][epoch], ranks[1]["sampler45"][epoch]
        assert len(a) == len(b) == 23
        assert set(a) | set(b) == set(range(45)) and len(a + b) == 46


def test_collectives_on_two_processes():
    run = run_mpi("collectives.py")
    assert run.returncode == 0, run.output
    assert "rank 0 ok" in run.stdout and "rank 1 ok" in run.stdout


@pytest.mark.parametrize("mode", ["fit", "top", "ddp"])
def test_a_failing_rank_stops_the_whole_job(mode):
    run = run_mpi("fail.py", mode)
    assert run.returncode != 0, run.output
    assert "deliberate failure on rank 1" in run.output
    assert "rank 1 of 2 failed" in run.stderr
    assert "did not stop" not in run.output
    assert run.seconds < TIME_LIMIT / 2, f"took {run.seconds:.1f} s to stop"


def test_chainrule_train_under_mpiexec_writes_one_run_directory(tmp_path):
    out = tmp_path / "digits"
    program = ["chainrule", "train", "--data", "digits", "--out", str(out), "--epochs", "3"]
    run = run_mpi_program(program + ["--no-progress"], cwd=tmp_path)
    assert run.returncode == 0, run.output
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "confusion_matrix.png",
        "history.json",
        "history.png",
        "metrics.json",
        "model.safetensors",
        "report.html",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # no staging leftovers
    assert run.stdout.count("data: digits") == 1, run.stdout  # rank 0 alone prints
    assert run.stdout.count("test: loss") == 1, run.stdout
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [0, 1, 2]


@pytest.mark.parametrize("script", ["collectives.py", "torch_dist.py"])
def test_two_processes_on_the_gpu_stand_in(script):
    """Every rank's arrays on the strict CuPy stand-in: the collectives, the bucketed gradient
    averaging and DDP copy device values to the host for MPI explicitly and put the results on
    each array's device (a leak raises there, as CuPy would)."""
    env = {"CHAINRULE_TEST_BACKEND": "strict", "CHAINRULE_DEVICE": "gpu"}
    run = run_mpi(script, env=env)
    assert run.returncode == 0, run.output
    assert "rank 0 ok" in run.stdout and "rank 1 ok" in run.stdout
