"""BLAS threads (issue 20): ``mx.set_num_threads``/``get_num_threads`` through threadpoolctl,
the user's environment variables respected, one thread in DataLoader process workers, and
``torch.set_num_threads`` made real."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import chainrule.core as mx
import chainrule.torch as ct
from chainrule.core import threads
from chainrule.data import DataLoader
from chainrule.distributed.group import local_ranks


def _blas_counts() -> list[int]:
    """threadpoolctl's own view of the BLAS libraries' thread counts."""
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def restore_threads():
    before = mx.get_num_threads()
    yield
    mx.set_num_threads(before)


def test_set_and_get_round_trip(restore_threads):
    assert _blas_counts(), "NumPy's BLAS library should be visible to threadpoolctl"
    for n in (1, 2, 1):
        mx.set_num_threads(n)
        assert mx.get_num_threads() == n
        assert _blas_counts() == [n] * len(_blas_counts())
    a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    assert np.allclose((mx.array(a) @ mx.array(a)).tolist(), a @ a, atol=1e-4)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError):
            mx.set_num_threads(bad)


def test_torch_set_num_threads(restore_threads):
    ct.set_num_threads(1)
    assert ct.get_num_threads() == 1 and mx.get_num_threads() == 1 and _blas_counts()[0] == 1
    with pytest.raises(RuntimeError):
        ct.set_num_threads(0)
    ct.set_num_interop_threads(2)  # accepted and answered back (no inter-op pool here)
    assert ct.get_num_interop_threads() == 2


def test_policy_for_ranks(restore_threads):
    assert threads.threads_per_rank(2, cores=8) == 4
    assert threads.threads_per_rank(3, cores=2) == 1
    assert threads.threads_per_rank(16, cores=4) == 1
    # a rank alone on its machine, or a user's variable: nothing changes
    mx.set_num_threads(2)
    assert threads.limit_for_ranks(1, environ={}) is None and mx.get_num_threads() == 2
    for name in threads.ENV_VARS:
        assert threads.limit_for_ranks(4, environ={name: "2"}) is None
        assert mx.get_num_threads() == 2
    assert threads.user_thread_vars({"OMP_NUM_THREADS": " ", "MKL_NUM_THREADS": "3"}) == {
        "MKL_NUM_THREADS": "3"
    }
    expected = max(1, min((os.cpu_count() or 1) // 64, threads.available_cores()))
    assert threads.limit_for_ranks(64, environ={}) == expected == mx.get_num_threads()
    # the launcher's count of ranks on this machine, else the whole job
    assert local_ranks(8, environ={"OMPI_COMM_WORLD_LOCAL_SIZE": "2"}) == 2
    assert local_ranks(8, environ={"MPI_LOCALNRANKS": "4"}) == 4
    assert local_ranks(8, environ={}) == 8


def test_user_env_var_is_the_libraries_count_and_import_is_cheap():
    code = (
        "import sys, chainrule.core as mx\n"
        "assert 'threadpoolctl' not in sys.modules\n"
        "print(mx.get_num_threads())\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"


class _ThreadsSeen:
    """A dataset whose samples are the BLAS thread count of the process that loads them."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array([mx.get_num_threads()], dtype=np.int64)


def test_process_worker_uses_one_blas_thread(restore_threads):
    mx.set_num_threads(2)
    loader = DataLoader(
        _ThreadsSeen(),
        batch_size=2,
        num_workers=1,
        worker_type="process",
        multiprocessing_context="fork",
    )
    seen = [int(v) for batch in loader for v in batch.reshape(-1).tolist()]
    assert seen == [1, 1, 1, 1]
    assert mx.get_num_threads() == 2  # the main process keeps its own
