"""The master with real worker processes, real signals and a real store."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from jobd.states import JobState
from jobd.store import NewJob

from support import Deployment, wait_until


def submit(deployment: Deployment, task: str, count: int = 1, daemon: str = "main", **args) -> list[int]:  # type: ignore[no-untyped-def]
    return [deployment.store.jobs.insert(NewJob(daemon, task, dict(args))) for _ in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_1000_intents_submitted_while_the_master_is_down_all_run_exactly_once(
    backend: str, deployment_factory, request: pytest.FixtureRequest  # type: ignore[no-untyped-def]
) -> None:
    url = request.getfixturevalue("mariadb_url") if backend == "mariadb" else None
    deployment = deployment_factory(url)
    deployment.write_config({"main": {"workers": 2}})
    assert deployment.jobd("init").returncode == 0
    import jobd

    ids = [jobd.submit("main", "t.record", {"n": n}, config=deployment.config_path) for n in range(1000)]
    assert len(set(ids)) == 1000
    deployment.start_master()
    deployment.wait_all_final(ids, timeout=120)
    runs = Counter(int(line) for line in deployment.lines("runs.log"))
    assert set(runs) == set(ids)
    assert max(runs.values()) == 1, "a job ran twice"
    assert deployment.store.jobs.counts()["main"] == {"succeeded": 1000}


def test_kill_9_of_the_master_loses_no_job_and_checkpointed_work_resumes(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    master = deployment.start_master()
    counting = submit(deployment, "t.count", steps=30, step_seconds=0.1)[0]
    sleepers = submit(deployment, "t.sleep", count=4, seconds=0.5)
    wait_until(lambda: len(deployment.lines("steps.log")) >= 5, message="the counting task to make progress")
    os.killpg(master.pid, signal.SIGKILL)  # master, forkserver and workers: the whole host "dies"
    master.wait(10)
    steps_before = len(deployment.lines("steps.log"))
    assert deployment.store.jobs.get(counting).state is JobState.RUNNING

    deployment.start_master()
    deployment.wait_all_final([counting, *sleepers])
    assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in [counting, *sleepers])
    attempts = [line.split() for line in deployment.lines("attempts.log")]
    resumed_from = int(attempts[-1][2])
    assert resumed_from > 0, "the retry started from zero instead of its checkpoint"
    assert resumed_from >= steps_before - 1
    steps = [int(line.split()[1]) for line in deployment.lines("steps.log")]
    assert sorted(set(steps)) == list(range(30))
    assert len(steps) <= 30 + 1, "at most the step in flight is repeated"


def test_kill_9_of_a_worker_mid_job_retries_the_job_and_refills_the_pool(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "backoff_base": 0.1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.sleep", seconds=2)
    line = wait_until(lambda: deployment.lines("started.log"), message="the job to start")[0]
    worker_pid = int(line.split()[1])
    os.kill(worker_pid, signal.SIGKILL)
    deployment.wait_all_final([job_id])
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.attempts == 2
    wait_until(lambda: len(deployment.worker_pids("main", "idle")) == 2, message="the pool to be full again")
    assert worker_pid not in deployment.worker_pids("main")


def test_a_worker_that_exits_mid_job_is_replaced_and_the_job_retried(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "backoff_base": 0.1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.crash")
    deployment.wait_all_final([job_id])
    assert deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED
    assert deployment.status()["daemons"]["main"]["restarts"] == 1


def test_a_task_hanging_past_its_timeout_is_killed_and_retried_until_dead(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 2, "backoff_base": 0.1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.hang")  # the task declares timeout=1.0
    deployment.wait_all_final([job_id], timeout=60)
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.DEAD and job.attempts == 2
    assert "timed out after 1s" in (job.error or "")
    assert len(deployment.lines("attempts.log")) == 2


def test_a_task_that_always_raises_ends_dead_with_its_traceback_after_growing_delays(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 4, "backoff_base": 0.3}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.fail")
    deployment.wait_all_final([job_id], timeout=60)
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.DEAD and job.attempts == 4
    assert job.error == "ValueError: boom: the task always fails"
    assert "Traceback" in (job.traceback or "") and "testtasks.py" in (job.traceback or "")
    times = [float(line.split()[2]) for line in deployment.lines("attempts.log")]
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    assert len(gaps) == 3
    assert gaps[0] < gaps[2], f"delays should grow: {gaps}"
    assert gaps[2] >= 0.3 * 4 * 0.8 - 0.05  # 0.3, 0.6, 1.2 with ±20% jitter


def test_sigterm_lets_the_running_job_finish_and_the_master_exits_0(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, drain_timeout=20)
    master = deployment.start_master()
    (job_id,) = submit(deployment, "t.sleep", seconds=1.5)
    wait_until(lambda: deployment.lines("started.log"), message="the job to start")
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(30) == 0
    assert deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED


def test_sigterm_returns_jobs_unfinished_at_the_drain_timeout_to_the_queue(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, drain_timeout=0.5)
    master = deployment.start_master()
    (job_id,) = submit(deployment, "t.sleep", seconds=30)
    wait_until(lambda: deployment.lines("started.log"), message="the job to start")
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(30) == 0
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.QUEUED and job.attempts == 0, "a drain must not use up an attempt"


def test_heartbeats_continue_while_draining(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, drain_timeout=20)
    master = deployment.start_master()
    submit(deployment, "t.sleep", seconds=3.5)
    wait_until(lambda: deployment.lines("started.log"), message="the job to start")
    os.kill(master.pid, signal.SIGTERM)
    time.sleep(0.5)
    (record,) = [m for m in deployment.store.masters.all() if m.pid == master.pid]
    assert record.state == "draining"
    first_beat = record.heartbeat_at
    wait_until(
        lambda: [m for m in deployment.store.masters.all() if m.pid == master.pid][0].heartbeat_at > first_beat,
        timeout=5, message="a heartbeat during the drain",
    )
    assert master.wait(30) == 0


def test_cancel_a_running_job_reaches_the_task(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.wait_cancel", seconds=30)
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.RUNNING, message="the job to run")
    result = deployment.jobd("cancel", str(job_id))
    assert result.returncode == 0, result.stderr
    deployment.wait_all_final([job_id], timeout=20)
    assert deployment.store.jobs.get(job_id).state is JobState.CANCELLED


def test_a_row_naming_an_unknown_task_ends_dead_with_a_reason_and_the_master_goes_on(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    (bad,) = submit(deployment, "no.such.task")
    (good,) = submit(deployment, "t.record")
    deployment.wait_all_final([bad, good])
    dead = deployment.store.jobs.get(bad)
    assert dead.state is JobState.DEAD and "has no task 'no.such.task'" in (dead.error or "")
    assert deployment.store.jobs.get(good).state is JobState.SUCCEEDED


def test_worker_log_records_reach_the_master_log_with_their_job_id(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    (job_id,) = submit(deployment, "t.fail")
    wait_until(lambda: f"job={job_id} jobd.worker: job {job_id} failed" in (deployment.root / "jobd.log").read_text())
    log = (deployment.root / "jobd.log").read_text()
    assert f"job={job_id} jobd.worker: job {job_id} attempt 1: t.fail started" in log
