"""``ctx.stopping``: a long task saves its place and yields when its worker is on the way out.

Real masters, workers and signals. The drain timeouts here are long (60 s)
so that a job back in the queue well before them can only have yielded:
the bounds below are generous on purpose and never measure speed.
"""

from __future__ import annotations

import signal
import time

from typing import Any

import pytest

from jobd.context import StopEarly, TaskContext
from jobd.errors import JobdError
from jobd.job import Job
from jobd.outcomes import Ending, EndingKind, Limits, plan_outcome
from jobd.states import JobState
from jobd.store import NewJob, Store
from jobd.workers.protocol import JobFinished

from support import Deployment, wait_until

DRAIN_TIMEOUT = 60


def submit(deployment: Deployment, task: str, daemon: str = "main", **args) -> int:  # type: ignore[no-untyped-def]
    return deployment.store.jobs.insert(NewJob(daemon, task, dict(args)))


def attempts_of(deployment: Deployment, job_id: int) -> list[list[str]]:
    return [line.split() for line in deployment.lines("attempts.log") if line.split()[0] == str(job_id)]


def yields_of(deployment: Deployment, job_id: int) -> list[list[str]]:
    return [line.split() for line in deployment.lines("yielded.log") if line.split()[0] == str(job_id)]


class _Checkpoints:
    def __init__(self) -> None:
        self.saved: list[Any] = []

    def save(self, job_id: int, attempt: int, state: Any) -> bool:
        self.saved.append(state)
        return True


class _NoProgress:
    def report(self, job_id: int, progress: dict[str, Any]) -> None:
        pass


def context(checkpoints: _Checkpoints, stopping: list[bool]) -> TaskContext:
    return TaskContext(
        job_id=7, attempt=2, daemon="main", task="t", last_checkpoint=None, progress_sink=_NoProgress(),
        checkpoint_sink=checkpoints, is_cancelled=lambda: False, is_stopping=lambda: stopping[0],
    )


def test_stop_early_saves_the_checkpoint_then_raises_once_the_worker_is_stopping() -> None:
    checkpoints, stopping = _Checkpoints(), [False]
    ctx = context(checkpoints, stopping)
    assert not ctx.stopping
    stopping[0] = True
    assert ctx.stopping
    with pytest.raises(StopEarly):
        ctx.stop_early({"row": 41})
    assert checkpoints.saved == [{"row": 41}] and ctx.last_checkpoint == {"row": 41}


def test_stop_early_without_a_stop_is_refused_so_a_job_cannot_yield_forever() -> None:
    checkpoints = _Checkpoints()
    ctx = context(checkpoints, [False])
    with pytest.raises(JobdError, match="check ctx.stopping first") as raised:
        ctx.stop_early({"row": 41})
    assert not isinstance(raised.value, StopEarly) and checkpoints.saved == []


def test_a_yielded_attempt_is_planned_back_into_the_queue_with_its_attempt_given_back() -> None:
    job = Job(id=3, daemon="main", task="t", args={}, state=JobState.RUNNING, attempts=2, owner="m1")
    limits = Limits(timeout=60, max_attempts=2, backoff_base=1, backoff_max=10)
    ending = Ending.reported(JobFinished(3, 2, "returned"))  # what a worker reports for ``ctx.stop_early``
    assert ending.kind is EndingKind.RETURNED
    outcome = plan_outcome(job, ending, limits, now=100.0)
    assert outcome.state is JobState.QUEUED and outcome.values == {"attempts": 1, "owner": None}


def test_a_yielded_attempt_is_written_back_to_the_queue_keeping_its_checkpoint(store: Store) -> None:
    job_id = store.jobs.insert(NewJob("main", "t", {}))
    (claimed,) = store.jobs.claim("main", 1, "m1", now=time.time())
    assert store.jobs.save_checkpoint(job_id, claimed.attempts, {"row": 41})
    ending = Ending.reported(JobFinished(job_id, claimed.attempts, "returned"))
    limits = Limits(timeout=60, max_attempts=1, backoff_base=1, backoff_max=10)
    assert store.jobs.apply_outcomes("m1", [plan_outcome(claimed, ending, limits, time.time())]) == 1
    job = store.jobs.get(job_id)
    assert (job.state, job.attempts, job.owner, job.checkpoint) == (JobState.QUEUED, 0, None, {"row": 41})
    (again,) = store.jobs.claim("main", 1, "m2", now=time.time())
    assert again.id == job_id and again.attempts == 1 and again.checkpoint == {"row": 41}


def test_a_stopping_master_lets_a_long_task_checkpoint_and_yield_then_a_restart_resumes_it(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}}, drain_timeout=DRAIN_TIMEOUT)
    master = deployment.start_master()
    job_id = submit(deployment, "t.patient", steps=400, step_seconds=0.05)  # 20 s of work
    wait_until(lambda: len(deployment.lines("steps.log")) >= 5, message="the long task to make some progress")

    asked_at = time.time()
    master.send_signal(signal.SIGTERM)  # what `jobd stop` sends (the CLI's own start-up is not the master's to answer for)
    master.wait(DRAIN_TIMEOUT)
    stopped_at = time.time()

    ((_, step, yielded_at),) = yields_of(deployment, job_id)
    took = float(yielded_at) - asked_at
    print(f"\nthe task yielded {took * 1000:.0f} ms after the stop; the master exited after {stopped_at - asked_at:.2f} s")
    assert took < DRAIN_TIMEOUT / 3, "the task was not told: it ran on towards the drain timeout"
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.QUEUED
    assert job.attempts == 0, "a yield gives its attempt back"
    assert job.checkpoint == int(step) > 0

    deployment.start_master()
    deployment.wait_all_final([job_id])
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.attempts == 1 and job.result == 400
    first, second = attempts_of(deployment, job_id)
    assert int(first[2]) == 0 and int(second[2]) == int(step), "the second run resumes from the checkpoint"


def test_a_worker_retired_by_scale_down_tells_its_task_which_resumes_on_a_remaining_worker(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2, "prefetch": 0}}, drain_timeout=DRAIN_TIMEOUT)
    deployment.start_master()
    jobs = [submit(deployment, "t.patient", steps=300, step_seconds=0.05) for _ in range(2)]  # 15 s each
    wait_until(lambda: all(attempts_of(deployment, job_id) for job_id in jobs), message="both long tasks to start")

    assert deployment.jobd("scale", "main", "1").returncode == 0
    (yielded,) = wait_until(lambda: [job_id for job_id in jobs if yields_of(deployment, job_id)], message="one task to yield")
    retired_pid = int(attempts_of(deployment, yielded)[0][3])
    deployment.wait_all_final(jobs, timeout=90)

    assert all(deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in jobs)
    assert deployment.store.jobs.get(yielded).attempts == 1, "the yield gave its attempt back"
    ((_, step, _),) = yields_of(deployment, yielded)
    first, second = attempts_of(deployment, yielded)
    assert int(second[2]) == int(step), "the second run resumes from the checkpoint"
    assert int(second[3]) != retired_pid, "it ran again on the worker that stays"
    wait_until(lambda: deployment.worker_pids("main") == [int(second[3])], message="one worker left")


SHELL_COMMAND = (
    'if [ -f "$JOBD_TEST_DIR/stopped.flag" ]; then echo second-run >> "$JOBD_TEST_DIR/shell.log"; exit 0; fi; '
    'trap \'touch "$JOBD_TEST_DIR/stopped.flag"; exit 3\' TERM; '
    'echo first-run >> "$JOBD_TEST_DIR/shell.log"; '
    "while true; do sleep 0.1; done"
)


def test_a_shell_task_gets_sigterm_when_its_worker_stops_and_runs_again_after_a_restart(deployment: Deployment) -> None:
    deployment.write_config(
        {"main": {"workers": 1, "shell": {"t.loop": {"command": SHELL_COMMAND}}}}, drain_timeout=DRAIN_TIMEOUT,
    )
    master = deployment.start_master()
    job_id = submit(deployment, "t.loop")
    wait_until(lambda: deployment.lines("shell.log"), message="the command to start")

    asked_at = time.time()
    assert deployment.jobd("stop").returncode == 0
    master.wait(DRAIN_TIMEOUT)
    assert time.time() - asked_at < DRAIN_TIMEOUT / 3, "the command was not told: the drain timed out"
    job = deployment.store.jobs.get(job_id)
    assert job.state is JobState.QUEUED and job.attempts == 0

    deployment.start_master()
    deployment.wait_all_final([job_id])
    assert deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED
    assert deployment.lines("shell.log") == ["first-run", "second-run"]
