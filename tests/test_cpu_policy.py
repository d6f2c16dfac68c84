"""The master runs under SCHED_BATCH, so it never preempts a worker when the worker's message wakes it; workers run tasks under the normal policy.

A worker writes ``took`` to the master just before it calls a submit's
task; the kernel often wakes the master on that worker's CPU, and under the
normal policy the master then ran its whole loop turn before the task
started (``jobd.cpu_policy``). Under SCHED_BATCH it waits for the worker
instead. The workers, started through a fork server that inherits the
master's policy, set the normal one back: the application's code runs as
it would anywhere else.
"""

from __future__ import annotations

import os

import pytest

import jobd
from jobd.states import JobState

from support import Deployment, wait_until

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="Linux scheduling policies")


def thread_policies(pid: int) -> dict[int, int]:
    """Each thread of process ``pid``, with its scheduling policy."""
    policies = {}
    for name in os.listdir(f"/proc/{pid}/task"):
        try:
            policies[int(name)] = os.sched_getscheduler(int(name))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
    return policies


def test_every_thread_of_the_master_runs_batch_and_every_worker_runs_normally(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    master = deployment.start_master()
    job_id = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED, message="the job to run")

    policies = thread_policies(master.pid)
    assert len(policies) > 1  # the loop and its helper threads (control socket, lease, checkpoints, logs)
    assert set(policies.values()) == {os.SCHED_BATCH}, policies

    workers = deployment.worker_pids("main")
    assert len(workers) == 2
    for pid in workers:
        assert set(thread_policies(pid).values()) == {os.SCHED_OTHER}, (pid, thread_policies(pid))



def test_a_master_started_under_another_policy_keeps_it_and_so_do_its_workers(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))  # as `chrt -b 0 jobd start` would: the master inherits it
    try:
        master = deployment.start_master()
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    (worker,) = wait_until(lambda: deployment.worker_pids("main", "idle") or None, message="the worker to be idle")

    assert set(thread_policies(master.pid).values()) == {os.SCHED_BATCH}
    assert set(thread_policies(worker).values()) == {os.SCHED_BATCH}  # the operator's choice, not set back
    assert any("the master keeps the CPU policy it was started under (SCHED_BATCH), and so do its workers" in line for line in deployment.lines("jobd.log"))
