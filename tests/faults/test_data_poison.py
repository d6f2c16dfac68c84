"""Poison jobs: no job's output can stop a host (DESIGN invariant 8).

Each poison job produces what a buggy task produces in production: an
exception message of 100 KB or 10 MB, a 20 MB result or checkpoint, a 1 MB
progress message or log line, a result that is not JSON or holds NaN, text
that is not valid Unicode (a lone surrogate, what a non-UTF-8 file name
decodes to), and twenty jobs with 1 MB of args returning them. On both
stores, with 200 normal jobs submitted alongside: every poison job ends in
a clear state with a readable reason, every normal job succeeds, the master
answers ``jobd status`` throughout and stops on SIGTERM. On MariaDB, two
masters share the store: neither wedges over a job the store refuses.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from jobd.config import DaemonConfig
from jobd.control import client
from jobd.job import Job
from jobd.states import FINAL, JobState
from jobd.store import NewJob
from jobd.workers import protocol
from jobd.workers.pipelining import MAX_UNREAD_BYTES
from jobd.workers.pool import Pool, Worker, unread_bytes
from jobd.workers.states import WorkerState
from support import Deployment, wait_until

MB = 1024 * 1024
DRAIN_TIMEOUT = 5.0
CANARIES = 200
LEASE = 3.0  # seconds, for the two-master test
DAEMON = {"workers": 2, "modules": ["data_poison_tasks"], "max_attempts": 1, "drain_timeout": DRAIN_TIMEOUT}

# task, args, the state it must end in, what its error (or result) must say
POISON: list[tuple[str, dict[str, Any], JobState, str]] = [
    ("poison.error", {"size": 100_000}, JobState.DEAD, "ValueError: EEEE"),
    ("poison.error", {"size": 10_000_000}, JobState.DEAD, "ValueError: EEEE"),
    ("poison.result", {"size": 20_000_000}, JobState.DEAD, "result is 19.1 MB, over max_result_bytes = 1 MB"),
    ("poison.checkpoint", {"size": 20_000_000}, JobState.DEAD, "checkpoint is 19.1 MB, over max_checkpoint_bytes = 1 MB"),
    ("poison.progress", {"size": MB}, JobState.SUCCEEDED, '"reported"'),
    ("poison.log", {"size": MB}, JobState.SUCCEEDED, '"logged"'),
    ("poison.not_json", {}, JobState.DEAD, "result is not JSON: Object of type set is not JSON serializable"),
    ("poison.nan", {}, JobState.DEAD, "result holds NaN or Infinity"),
    ("poison.surrogate_error", {}, JobState.DEAD, "FileNotFoundError: cannot open report-\\udcff.csv"),
    ("poison.surrogate_result", {}, JobState.SUCCEEDED, '{"file":"report-\\\\udcff.csv"}'),
]
BLOB = {"blob": "x" * 1_000_000}  # 1 MB of args, returned as the result: 1 MB back


def insert(deployment: Deployment, task: str, args: dict[str, Any]) -> int:
    return deployment.store.jobs.insert(NewJob("poison", task, args))


def status_answers(deployment: Deployment) -> dict[str, Any]:
    """``jobd status`` through the control socket; fails the test if it does not answer within 5 s."""
    started = time.monotonic()
    answer = client.call(deployment.socket, "status", timeout=5)
    assert time.monotonic() - started < 5, "jobd status took more than 5 s"
    return answer


def wait_final_while_answering(deployments: list[Deployment], job_ids: list[int], timeout: float) -> float:
    """Wait for every job to be final, asking every master for its status at each turn; the slowest answer."""
    slowest = 0.0

    def all_final() -> bool:
        nonlocal slowest
        for deployment in deployments:
            started = time.monotonic()
            status_answers(deployment)
            slowest = max(slowest, time.monotonic() - started)
        return all(JobState(state) in FINAL for state in _states(deployments[0], job_ids).values())

    wait_until(all_final, timeout=timeout, interval=0.2, message=f"{len(job_ids)} jobs to end")
    return slowest


def _states(deployment: Deployment, job_ids: list[int]) -> dict[int, str]:
    """The states of ``job_ids`` (without reading their results: some are megabytes)."""
    jobs = deployment.store.tables["jobs"]
    with deployment.store.engine.connect() as connection:
        rows = connection.execute(sa.select(jobs.c.id, jobs.c.state).where(jobs.c.id.in_(job_ids))).all()
    return {int(row[0]): str(row[1]) for row in rows}


def stop_with_sigterm(deployment: Deployment, process: subprocess.Popen[bytes]) -> float:
    """SIGTERM to the master's pid alone; it must exit within its drain timeout and a few seconds."""
    started = time.monotonic()
    os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=DRAIN_TIMEOUT + 10)
    return time.monotonic() - started


@pytest.mark.timeout(120)
def test_poison_jobs_end_with_a_reason_while_200_normal_jobs_succeed_and_the_master_answers(
    deployment_factory: Callable[[str], Deployment], store_url: str
) -> None:
    deployment = deployment_factory(store_url)
    deployment.write_config({"poison": DAEMON})
    master = deployment.start_master()
    canaries = [insert(deployment, "poison.canary", {"n": n}) for n in range(CANARIES // 2)]
    poison = {insert(deployment, task, args): (task, args, state, reason) for task, args, state, reason in POISON}
    blobs = [insert(deployment, "poison.echo", BLOB) for _ in range(20)]
    canaries += [insert(deployment, "poison.canary", {"n": n}) for n in range(CANARIES // 2, CANARIES)]

    slowest = wait_final_while_answering([deployment], canaries + list(poison) + blobs, timeout=90)
    stopped_in = stop_with_sigterm(deployment, master)
    assert master.returncode == 0, f"the master exited with {master.returncode}"

    jobs = deployment.store.jobs
    assert all(jobs.get(job_id).state is JobState.SUCCEEDED for job_id in canaries)
    for job_id in blobs:
        job = jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED and job.result == BLOB, f"1 MB echo job {job_id}: {job.state} {job.error}"
    for job_id, (task, args, state, reason) in poison.items():
        job = jobs.get(job_id)
        assert job.state is state, f"{task} {args}: {job.state} ({job.error})"
        shown = job.error if state is not JobState.SUCCEEDED else json.dumps(job.result, separators=(",", ":"))
        assert shown is not None and reason in shown, f"{task} {args}: {shown[:300] if shown else shown}"
        assert len((job.error or "").encode()) <= 4096 and len((job.traceback or "").encode()) <= 64 * 1024
    truncated = [job_id for job_id, (task, *_rest) in poison.items() if task == "poison.error"]
    for job_id in truncated:
        assert "… [truncated " in (jobs.get(job_id).error or "")
    log_job = next(job_id for job_id, (task, *_rest) in poison.items() if task == "poison.log")
    logged = [line.message for line in deployment.store.job_logs.lines(log_job) if "LLLL" in line.message]
    assert logged and all(len(message.encode()) <= 16 * 1024 and "… [truncated " in message for message in logged)
    print(f"\nslowest status answer {slowest:.2f}s; SIGTERM stopped the master in {stopped_in:.2f}s")


@pytest.mark.mysql
@pytest.mark.timeout(120)
def test_two_masters_on_mariadb_neither_wedges_over_a_100_kb_error_and_every_canary_runs(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str
) -> None:
    members = [deployment_factory(mariadb_url) for _ in range(2)]
    for member in members:
        member.write_config({"poison": DAEMON}, heartbeat_interval=0.5, heartbeat_lease=LEASE)
    processes = [member.start_master() for member in members]
    poison = [insert(members[0], "poison.error", {"size": 100_000}) for _ in range(4)]
    canaries = [insert(members[0], "poison.canary", {"n": n}) for n in range(CANARIES)]

    wait_final_while_answering(members, poison + canaries, timeout=60)
    lease_over_at = time.monotonic() + LEASE  # a wedged master would be declared dead by the other within a lease

    def both_alive_for_a_lease() -> bool:
        for member in members:
            status_answers(member)
        assert len(members[0].store.masters.live(lease=LEASE)) == 2, "a master stopped heartbeating"
        return time.monotonic() > lease_over_at

    wait_until(both_alive_for_a_lease, timeout=LEASE + 10, interval=0.2, message="a lease to pass")
    for member, process in zip(members, processes):
        stop_with_sigterm(member, process)
        assert process.returncode == 0, f"a master exited with {process.returncode}"

    jobs = members[0].store.jobs
    assert all(jobs.get(job_id).state is JobState.SUCCEEDED for job_id in canaries)
    for job_id in poison:
        job = jobs.get(job_id)
        assert job.state is JobState.DEAD and job.attempts == 1, f"poison job {job_id}: {job.state}, {job.attempts} attempts"
        assert job.error is not None and job.error.startswith("ValueError: EEEE") and "… [truncated " in job.error


def test_a_busy_worker_is_handed_only_what_its_pipe_holds_unread_so_the_master_never_blocks_on_it() -> None:
    master_end, worker_end = multiprocessing.Pipe()
    spawned = SimpleNamespace(connection=master_end, pid=os.getpid(), process=None)
    worker = Worker(spawned=spawned, started_at=0.0, state=WorkerState.IDLE)  # type: ignore[arg-type]
    pool = Pool("poison", DaemonConfig(), spec=None, launcher=None)  # type: ignore[arg-type]

    def job(job_id: int, args: dict[str, Any]) -> tuple[Job, float]:
        return Job(job_id, "poison", "poison.echo", args, JobState.RUNNING, attempts=1), 60.0

    try:
        assert pool.assign(worker, [job(1, {"blob": "x" * 100_000})])  # idle: it reads the whole frame before starting
        assert pool.assign(worker, [job(n, {"n": n}) for n in range(2, 12)])  # small ones may wait behind it
        assert 0 < unread_bytes(worker) <= MAX_UNREAD_BYTES
        assert not pool.assign(worker, [job(12, {"blob": "x" * MAX_UNREAD_BYTES})])  # would not fit: kept for a reading worker
        assert [held.job.id for held in worker.assignments] == list(range(1, 12))
        reader = protocol.FrameReader(worker_end.fileno())
        received: list[protocol.Message] = []
        while len(received) < 11:
            received += [message for frame in reader.read() for message in protocol.decode(frame)]
        assert [message.job_id for message in received if isinstance(message, protocol.RunJob)] == list(range(1, 12))
    finally:
        master_end.close()
        worker_end.close()
