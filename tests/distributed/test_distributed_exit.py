"""Any end of one rank ends the whole job: ``mpiexec`` never hangs on a rank that has ended.

Each scenario of ``scripts/exits.py`` runs on 2 (or 3) real processes; a job that hangs is
killed after ``LIMIT`` seconds and the test fails. The scenarios that rely on the other
ranks being told run with ``CHAINRULE_MPI_EXIT_TIMEOUT=inf``, so that the exit timeout
cannot be what ends them.
"""

from __future__ import annotations

import math

import pytest
from mpi_helpers import requires_mpi, run_mpi, run_mpi_programs

from chainrule.distributed import exits

LIMIT = 60  # seconds before a hung job is killed (each run takes 2 to 4 s here)
NO_TIMEOUT = {exits.TIMEOUT_VARIABLE: "inf"}


def _stopped(run, status: int | None = None) -> None:
    assert run.returncode != 0, run.output
    if status is not None:
        assert run.returncode == status, run.output
    assert "did not stop" not in run.output
    assert run.seconds < 30, f"took {run.seconds:.1f} s to stop"


@requires_mpi
def test_an_exception_on_one_rank_ends_the_job():
    run = run_mpi("exits.py", "raise", timeout=LIMIT)
    _stopped(run)
    assert "rank 1 of 2 failed; stopping all ranks" in run.stderr
    assert "RuntimeError: deliberate failure on rank 1" in run.stderr


@requires_mpi
@pytest.mark.parametrize("mode", ["exit0", "exit0-late"])
def test_sys_exit_0_while_another_rank_waits_in_all_sum(mode):
    # exit0: rank 0 already waits when rank 1 ends; exit0-late: rank 0 comes to all_sum after
    run = run_mpi("exits.py", mode, timeout=LIMIT, env=NO_TIMEOUT)
    _stopped(run)
    assert (
        "chainrule.distributed: rank 1 of 2 ended (exit status 0) while rank 0 waits for it "
        "in all_sum; stopping all ranks" in run.stderr
    )


@requires_mpi
def test_a_script_that_returns_while_another_rank_waits_in_broadcast():
    run = run_mpi("exits.py", "return", timeout=LIMIT, env=NO_TIMEOUT)
    _stopped(run)
    assert "rank 1 of 2 ended while rank 0 waits for it in broadcast" in run.stderr


@requires_mpi
def test_sys_exit_with_a_status_ends_the_job_with_that_status():
    run = run_mpi("exits.py", "exit3", timeout=LIMIT, env=NO_TIMEOUT)
    _stopped(run, status=3)
    assert "rank 1: giving up with status 3" in run.stderr
    assert "chainrule.distributed: rank 1 of 2 exited with status 3; stopping all ranks" in (
        run.stderr
    )


@requires_mpi
def test_sigterm_on_one_rank_ends_the_job_with_its_message():
    run = run_mpi("exits.py", "sigterm", timeout=LIMIT)
    _stopped(run, status=128 + 15)
    assert "rank 1 of 2 received SIGTERM; stopping all ranks" in run.stderr


@requires_mpi
def test_waiting_outside_chainrule_is_ended_by_the_exit_timeout():
    run = run_mpi("exits.py", "raw", timeout=LIMIT, env={exits.TIMEOUT_VARIABLE: "2"})
    _stopped(run)
    assert "rank 1 of 2 ended (exit status 0), but not every rank ended within 2 s" in run.stderr
    assert exits.TIMEOUT_VARIABLE in run.stderr
    assert run.seconds >= 2


@requires_mpi
def test_chainrule_train_with_the_data_file_missing_on_one_machine(tmp_path):
    rows = ["a,b,label"] + [f"{i % 7 / 7},{i % 3 / 3},{i % 2}" for i in range(60)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    train = ["chainrule", "train", "--out", "run", "--epochs", "2", "--no-progress"]
    run = run_mpi_programs(
        [train + ["--data", "data.csv"], train + ["--data", "missing.csv"]],
        timeout=LIMIT,
        cwd=tmp_path,
    )
    _stopped(run)
    errors = [line for line in run.stderr.splitlines() if line.startswith("chainrule train:")]
    assert len(errors) == 1 and "missing.csv" in errors[0], run.stderr
    assert "Traceback" not in run.stderr  # the command's one line, not a traceback
    assert "rank 1 of 2 ended" in run.stderr and "stopping all ranks" in run.stderr


@requires_mpi
def test_a_complete_program_exits_0_without_aborting():
    # 3 ranks: the last ends first, the others go on (subgroup, send/recv), rank 0 last.
    run = run_mpi("exits.py", "normal", n=3, timeout=LIMIT)
    assert run.returncode == 0, run.output
    assert sorted(run.stdout.split("\n")) == ["", "rank 0 done", "rank 1 done", "rank 2 done"]
    assert "stopping all ranks" not in run.output and "MPI_ABORT" not in run.output


@requires_mpi
def test_ranks_that_all_exit_with_the_same_status_end_without_aborting():
    run = run_mpi("exits.py", "all-fail", timeout=LIMIT)
    assert run.returncode == 2, run.output
    assert "stopping all ranks" not in run.output and "MPI_ABORT" not in run.output


def test_exit_timeout_from_the_environment(monkeypatch):
    monkeypatch.delenv(exits.TIMEOUT_VARIABLE, raising=False)
    assert exits.exit_timeout() == exits.DEFAULT_TIMEOUT == 30
    for text, seconds in (("2.5", 2.5), ("0", 0.0), (" inf ", math.inf), ("", 30)):
        monkeypatch.setenv(exits.TIMEOUT_VARIABLE, text)
        assert exits.exit_timeout() == seconds
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(exits.TIMEOUT_VARIABLE, bad)
        with pytest.raises(ValueError, match=f"{exits.TIMEOUT_VARIABLE} must be a number"):
            exits.exit_timeout()


def test_waiting_does_nothing_in_a_process_alone():
    import chainrule.distributed as dist

    assert exits._WATCH is None  # pytest is not launched by mpiexec: no hooks installed
    with exits.waiting("all_sum", dist.init()):
        pass
