"""The master's dispatcher and endings on the fake launcher, a manual clock and a SQLite file.

No process starts: the fake workers are pipes, and a test plays a worker by
writing the messages a real one would.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobd import defaults
from jobd.config import JobdConfig
from jobd.config_checks import validated
from jobd.inventory import TaskInfo
from jobd.master import Master
from jobd.states import JobState
from jobd.store import NewJob, Store, open_store
from jobd.store.handover import handover_for
from jobd.tasks import TaskOptions
from jobd.workers import protocol
from jobd.workers.pool import Pool, Worker

from .fakes import UNREACHABLE_SOCKET, FakeLauncher, ManualClock


#: Each built master's store as an application and the CLI open it: what a master never does (the
#: schema, submits, operator actions) is done through this one, as in production.
APPLICATIONS: dict[int, Store] = {}


def application(master: Master) -> Store:
    return APPLICATIONS[id(master)]


@contextmanager
def built_master(tmp_path: Path, launcher: FakeLauncher, clock: ManualClock, task: str) -> Iterator[Master]:
    """A real Master on a SQLite file, with the fake launcher and clock: one daemon "main" serving ``task``."""
    config = validated(JobdConfig, {
        "store": f"sqlite:///{tmp_path / 'jobd.db'}", "socket": UNREACHABLE_SOCKET, "schedule_dir": None,
        "daemons": {"main": {"workers": 2, "prefetch": 3, "max_attempts": 2, "timeout": 30}},
    })
    store = open_store(config.store)
    store.initialise()  # as `jobd start` does before it becomes the master
    built = Master(
        config, {"main": {task: TaskInfo(task, TaskOptions())}}, launcher=launcher, clock=clock,  # type: ignore[arg-type]
        store=handover_for(config.store),
    )
    APPLICATIONS[id(built)] = store
    try:
        yield built
    finally:
        del APPLICATIONS[id(built)]
        built.activity.stop()
        built.store.dispose()
        store.dispose()
        built.wake_pipe.close()
        built.loop.close()


@pytest.fixture
def master(tmp_path: Path, launcher: FakeLauncher, clock: ManualClock) -> Iterator[Master]:
    with built_master(tmp_path, launcher, clock, "t.work") as built:
        built.create_pool("main", built.config.daemons["main"])
        yield built


def ready_pool(master: Master) -> tuple[Pool, list[Worker]]:
    pool = master.pools["main"]
    pool.maintain()
    for worker in pool.workers:
        pool.on_message(worker, protocol.WorkerReady(worker.pid))
    return pool, list(pool.workers)


def submit(master: Master, count: int, task: str = "t.work", priority: int = 0) -> list[int]:
    return [application(master).jobs.insert(NewJob("main", task, {"n": n}, priority=priority)) for n in range(count)]


def report(master: Master, launcher: FakeLauncher, worker: Worker, message: protocol.Message) -> None:
    """Play ``worker``: write ``message`` to the master and let its loop read it."""
    launcher.workers[worker.pid].worker_end.send_bytes(protocol.encode([message]))
    master.loop.ready = {worker.reader.fd}
    master.loop.read_messages()


def test_a_claim_takes_jobs_for_the_idle_workers_plus_the_prefetch_and_starts_them(master: Master, launcher: FakeLauncher) -> None:
    pool, workers = ready_pool(master)
    submit(master, 10)

    master.dispatcher.dispatch()

    running = master.store.jobs.list(states=[JobState.RUNNING])
    assert len(running) == 2 + 3 and all(job.owner == master.id for job in running)
    assert pool.waiting == 3
    handed = [m for worker in workers for m in launcher.workers[worker.pid].read() if isinstance(m, protocol.RunJob)]
    assert len(handed) == 2


def test_a_finished_job_is_written_and_its_worker_gets_the_next_prefetched_job(
    master: Master, launcher: FakeLauncher, clock: ManualClock
) -> None:
    pool, (first, _second) = ready_pool(master)
    submit(master, 5)
    master.dispatcher.dispatch()
    (run,) = [m for m in launcher.workers[first.pid].read() if isinstance(m, protocol.RunJob)]

    report(master, launcher, first, protocol.JobFinished(run.job_id, run.attempt, "succeeded", result={"ok": 1}, duration=0.1))
    clock.advance(1.0)
    master.endings.gather([])  # the batch window passed: the burst is written

    done = master.store.jobs.get(run.job_id)
    assert done.state is JobState.SUCCEEDED and done.result == {"ok": 1}
    assert master.jobs_finished == 1 and pool.waiting == 2
    assert len([m for m in launcher.workers[first.pid].read() if isinstance(m, protocol.RunJob)]) == 2


def test_a_job_announced_above_a_full_prefetch_is_claimed_past_it_and_goes_to_the_next_free_worker(
    master: Master, launcher: FakeLauncher,
) -> None:
    pool, (first, _second) = ready_pool(master)
    submit(master, 20)
    master.dispatcher.dispatch()
    assert master.dispatcher.wanted(pool, limited=False) == 0  # the prefetch is full: a plain wake-up claims nothing
    (urgent,) = submit(master, 1, priority=100)

    master.dispatcher.dispatch({"main": 0})
    assert master.store.jobs.get(urgent).state is JobState.QUEUED
    master.dispatcher.dispatch({"main": 100})  # a submit's wake-up names its job's priority

    assert master.store.jobs.get(urgent).state is JobState.RUNNING and urgent in pool.held_job_ids()
    (run,) = [m for m in launcher.workers[first.pid].read() if isinstance(m, protocol.RunJob)]
    report(master, launcher, first, protocol.JobFinished(run.job_id, run.attempt, "succeeded", duration=0.1))
    assert [m.job_id for m in launcher.workers[first.pid].read() if isinstance(m, protocol.RunJob)][-1] == urgent


def test_sqlite_writes_stay_short_only_for_a_while_after_an_urgent_claim(master: Master, clock: ManualClock) -> None:
    ready_pool(master)
    submit(master, 20)
    master.dispatcher.dispatch()
    assert master.dispatcher.jobs_per_write() is None, "no urgent job yet: one transaction per claim or burst"
    submit(master, 1, priority=100)

    master.dispatcher.dispatch({"main": 100})
    assert master.dispatcher.jobs_per_write() == defaults.SQLITE_JOBS_PER_WRITE
    clock.advance(defaults.SHORT_WRITES_AFTER_URGENT_SECONDS + 1)
    assert master.dispatcher.jobs_per_write() is None


def test_a_claim_larger_than_a_short_write_takes_every_job_it_wanted(master: Master, clock: ManualClock) -> None:
    pool, _workers = ready_pool(master)
    master.dispatcher.urgent_claimed_at = clock()  # short writes: as just after an urgent claim
    size = defaults.SQLITE_JOBS_PER_WRITE
    pool.settings = replace(pool.settings, prefetch=2 * size + 5)
    submit(master, 3 * size)
    wanted = master.dispatcher.wanted(pool, limited=False)

    master.dispatcher.dispatch()

    assert wanted > 2 * size and len(pool.held_job_ids()) == wanted


def test_a_wake_up_for_a_job_no_more_urgent_than_the_prefetch_claims_nothing_more(master: Master) -> None:
    pool, _workers = ready_pool(master)
    submit(master, 20, priority=5)
    master.dispatcher.dispatch()
    held = pool.held_job_ids()
    submit(master, 1, priority=5)

    master.dispatcher.dispatch({"main": 5})

    assert pool.held_job_ids() == held


def test_a_job_of_an_unknown_task_dies_with_the_reason_instead_of_reaching_a_worker(master: Master, launcher: FakeLauncher) -> None:
    _pool, workers = ready_pool(master)
    (job_id,) = submit(master, 1, task="t.gone")

    master.dispatcher.dispatch()

    dead = master.store.jobs.get(job_id)
    assert dead.state is JobState.DEAD and "has no task 't.gone'" in (dead.error or "")
    assert not [m for worker in workers for m in launcher.workers[worker.pid].read() if isinstance(m, protocol.RunJob)]


def test_a_crashed_worker_s_job_is_retried_and_a_timed_out_one_says_so(master: Master, launcher: FakeLauncher, clock: ManualClock) -> None:
    pool, (first, second) = ready_pool(master)
    submit(master, 2)
    master.dispatcher.dispatch()
    crashed, slow = (first.assignment, second.assignment)
    assert crashed is not None and slow is not None
    launcher.exit(first.pid, -9)
    master.endings.exited(pool, pool.reap())
    clock.advance(31)
    pool.check_timeouts()
    launcher.exit(second.pid, -15)
    master.endings.exited(pool, pool.reap())

    master.endings.settle_exits()

    after_crash, after_timeout = master.store.jobs.get(crashed.job.id), master.store.jobs.get(slow.job.id)
    assert after_crash.state is JobState.RETRYING and after_crash.error == "worker killed by SIGKILL while running the job"
    assert after_timeout.state is JobState.RETRYING and after_timeout.error == "timed out after 30s"


def test_a_drain_returns_the_prefetched_jobs_with_their_attempt_refunded(master: Master) -> None:
    pool, _workers = ready_pool(master)
    submit(master, 10)
    master.dispatcher.dispatch()
    waiting = pool.held_job_ids() - {w.assignment.job.id for w in pool.workers if w.assignment}

    master.begin_drain("test")

    assert pool.waiting == 0
    for job_id in waiting:
        job = master.store.jobs.get(job_id)
        assert job.state is JobState.QUEUED and job.attempts == 0 and job.owner is None


def test_a_cancel_of_a_waiting_job_ends_it_cancelled_at_once(master: Master) -> None:
    pool, _workers = ready_pool(master)
    submit(master, 10)
    master.dispatcher.dispatch()
    waiting = sorted(pool.held_job_ids() - {w.assignment.job.id for w in pool.workers if w.assignment})[0]
    application(master).jobs.cancel(waiting)

    master.operations.apply_cancel_requests()

    cancelled = master.store.jobs.get(waiting)
    assert cancelled.state is JobState.CANCELLED and cancelled.error == "cancelled by an operator"
    assert waiting not in pool.held_job_ids()
