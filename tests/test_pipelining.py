"""Short jobs handed to a worker ahead of time: nothing is lost, run twice or charged an attempt.

A worker running short tasks holds a few jobs beyond the one it runs (see
``jobd.workers.pipelining``). These tests make sure those held jobs go back
to the queue, with their attempt refunded, whenever the worker ends without
starting them: killed, or stopped by a drain.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from jobd.states import JobState
from jobd.store import NewJob

from support import Deployment, wait_until

SHORT = 0.002  # seconds: a short task, so the pool pipelines
JOBS = 1500


def _submit_short_jobs(deployment: Deployment) -> None:
    deployment.store.jobs.insert_many([NewJob("main", "t.sleep", {"seconds": SHORT}) for _ in range(JOBS)])


def _succeeded(deployment: Deployment) -> int:
    return deployment.store.jobs.counts().get("main", {}).get("succeeded", 0)


def _holding_ahead(deployment: Deployment) -> bool:
    workers = deployment.status()["daemons"]["main"]["workers"]
    return any(worker["waiting"] > 0 for worker in workers)


def test_a_worker_killed_while_holding_jobs_ahead_loses_none_and_reruns_only_the_running_one(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "backoff_base": 0.1}})
    deployment.start_master()
    _submit_short_jobs(deployment)
    wait_until(lambda: _holding_ahead(deployment), message="the worker to hold jobs ahead")
    (worker_pid,) = deployment.worker_pids("main")
    os.kill(worker_pid, signal.SIGKILL)
    wait_until(lambda: _succeeded(deployment) == JOBS, timeout=90, message="every job to succeed")
    runs = Counter(deployment.lines("runs.log"))
    assert len(runs) == JOBS
    assert sum(1 for count in runs.values() if count > 1) <= 1, "only the job running at the kill may run twice"
    jobs = deployment.store.jobs.list(daemon="main", limit=JOBS)
    charged_twice = [job.id for job in jobs if job.attempts > 1]
    assert len(charged_twice) <= 1, f"held jobs must get their attempt back: {charged_twice[:10]}"


def test_a_drain_starts_none_of_the_held_jobs_and_returns_them_uncharged(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}}, drain_timeout=20)
    master = deployment.start_master()
    _submit_short_jobs(deployment)
    wait_until(lambda: _holding_ahead(deployment), message="the workers to hold jobs ahead")
    os.kill(master.pid, signal.SIGTERM)
    assert master.wait(30) == 0
    counts = deployment.store.jobs.counts().get("main", {})
    assert set(counts) <= {"succeeded", "queued"}, counts
    assert counts.get("queued", 0) > 0, "the drain came too late to test anything"
    runs = Counter(deployment.lines("runs.log"))
    assert len(runs) == counts["succeeded"] and set(runs.values()) == {1}
    waiting = [job for job in deployment.store.jobs.list(daemon="main", limit=JOBS) if job.state is JobState.QUEUED]
    assert all(job.attempts == 0 for job in waiting)


def test_short_jobs_do_not_wait_behind_a_long_one_while_another_worker_is_free(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    deployment.start_master()
    _submit_short_jobs(deployment)
    wait_until(lambda: _succeeded(deployment) == JOBS, timeout=90, message="the short jobs")
    long_job = deployment.store.jobs.insert(NewJob("main", "t.wait_cancel", {"seconds": 60}))
    wait_until(lambda: deployment.store.jobs.get(long_job).state is JobState.RUNNING, message="the long job to start")
    short = deployment.store.jobs.insert_many([NewJob("main", "t.sleep", {"seconds": SHORT}) for _ in range(50)])
    assert short == 50
    wait_until(lambda: _succeeded(deployment) == JOBS + 50, timeout=30, message="the short jobs beside the long one")
    assert deployment.store.jobs.get(long_job).state is JobState.RUNNING
