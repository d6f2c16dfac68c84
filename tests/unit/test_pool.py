"""Pool supervision on the fake launcher: restarts with backoff, recycling, timeouts, drains, the backlog."""

from __future__ import annotations

import signal

from jobd import defaults
from jobd.config import DaemonConfig, JobdConfig
from jobd.config_checks import validated
from jobd.job import Job
from jobd.states import JobState
from jobd.workers import protocol
from jobd.workers.memory import MB, Recycle
from jobd.workers.pool import Pool, Worker
from jobd.workers.states import WorkerState
from jobd.workers.spec import WorkerSpec

from .fakes import UNREACHABLE_SOCKET, FakeLauncher, ManualClock


def make_pool(launcher: FakeLauncher, clock: ManualClock, **settings: object) -> Pool:
    daemon = DaemonConfig(**settings)  # type: ignore[arg-type]
    config = validated(JobdConfig, {"socket": UNREACHABLE_SOCKET, "daemons": {"main": settings}, "schedule_dir": None})
    return Pool("main", daemon, WorkerSpec(config=config, daemon="main"), launcher, clock)  # type: ignore[arg-type]


def job(job_id: int, task: str = "t.work", priority: int = 0) -> Job:
    return Job(id=job_id, daemon="main", task=task, args={}, state=JobState.RUNNING, attempts=1, priority=priority)


def ready(pool: Pool) -> list[Worker]:
    """Start the pool's workers and have each say it is ready."""
    pool.maintain()
    for worker in pool.workers:
        pool.on_message(worker, protocol.WorkerReady(worker.pid))
    return list(pool.workers)


def finish(pool: Pool, worker: Worker, job_id: int) -> None:
    pool.on_message(worker, protocol.JobFinished(job_id, 1, "succeeded", duration=0.01))


def test_a_pool_starts_its_size_and_replaces_a_worker_that_crashes_after_doing_jobs(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=2)
    first, second = ready(pool)
    assert pool.assign(first, [(job(1), 60.0)])
    finish(pool, first, 1)
    launcher.exit(first.pid, 1)

    (exit,) = pool.reap()
    pool.maintain()

    assert exit.worker is first and exit.assignment is None and exit.reason == "worker exited with code 1"
    assert len(pool.serving_workers()) == 2 and first not in pool.workers
    assert pool.crash_streak == 0, "a worker that made progress does not back off"


def test_a_worker_that_never_gets_going_is_restarted_once_at_once_then_with_growing_backoff(
    launcher: FakeLauncher, clock: ManualClock
) -> None:
    pool = make_pool(launcher, clock, workers=1)
    spawn_times = []
    for _ in range(4):
        pool.maintain()
        while not pool.workers:  # waiting out the backoff
            clock.advance(0.1)
            pool.maintain()
        spawn_times.append(clock.now)
        launcher.exit(pool.workers[0].pid, 1)  # dies before saying it is ready
        pool.reap()
    gaps = [round(later - earlier, 1) for earlier, later in zip(spawn_times, spawn_times[1:])]
    base = defaults.WORKER_RESTART_BACKOFF_BASE_SECONDS
    assert gaps[0] == 0.0, "one quick retry: a start can be unlucky"
    assert gaps[1] >= base and gaps[2] >= 2 * base
    assert pool.crash_streak == 4 and pool.restarts == 4


def test_a_worker_is_recycled_after_its_share_of_jobs_without_interrupting_one(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1, max_tasks_per_worker=2)
    (worker,) = ready(pool)
    for job_id in (1, 2):
        assert pool.assign(worker, [(job(job_id), 60.0)])
        assert worker.state is WorkerState.BUSY
        finish(pool, worker, job_id)

    assert worker.state is WorkerState.STOPPING and pool.recycles[Recycle.MAX_TASKS] == 1
    assert any(isinstance(message, protocol.StopWorker) for message in launcher.workers[worker.pid].read())
    assert pool.free_slots(worker, 1) == 0
    pool.maintain()
    assert len(pool.serving_workers()) == 1 and pool.serving_workers()[0] is not worker


def test_a_worker_grown_past_max_memory_is_recycled_between_jobs(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1, max_memory_mb=100)
    (worker,) = ready(pool)
    launcher.rss[worker.pid] = 150 * MB
    assert pool.assign(worker, [(job(1), 60.0)])
    finish(pool, worker, 1)
    assert worker.state is WorkerState.STOPPING and pool.recycles[Recycle.MAX_MEMORY] == 1
    assert launcher.signals_to(worker.pid) == [], "no job is interrupted for it"


def test_a_worker_past_the_hard_memory_limit_is_killed_during_its_job(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1, max_memory_hard_mb=100)
    (worker,) = ready(pool)
    assert pool.assign(worker, [(job(1), 60.0)])
    launcher.rss[worker.pid] = 150 * MB
    pool.check_timeouts()
    assert launcher.signals_to(worker.pid) == [signal.SIGTERM]
    assert pool.recycles[Recycle.MEMORY_HARD_LIMIT] == 1 and (worker.exit_reason or "").startswith("killed: RSS 150 MB")


def test_a_job_past_its_timeout_gets_sigterm_then_sigkill_after_the_grace(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    assert pool.assign(worker, [(job(1), 5.0)])
    clock.advance(5.5)
    pool.check_timeouts()
    assert launcher.signals_to(worker.pid) == [signal.SIGTERM] and worker.timed_out
    clock.advance(defaults.TIMEOUT_KILL_GRACE_SECONDS + 0.1)
    pool.check_timeouts()
    assert launcher.signals_to(worker.pid) == [signal.SIGTERM, signal.SIGKILL]

    (exit,) = pool.reap()
    assert exit.assignment is not None and exit.assignment.job.id == 1 and exit.reason == "timed out after 5s"


def test_a_drain_retires_idle_workers_and_kills_only_jobs_past_the_drain_timeout(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=2)
    busy, idle = ready(pool)
    assert pool.assign(busy, [(job(1), 600.0)])

    pool.wind_down(kill_running=False)
    assert idle.state is WorkerState.STOPPING and busy.state is WorkerState.STOPPING
    # A busy worker ends its running job first: only told so (``ctx.stopping``), never killed for it.
    assert launcher.signals_to(busy.pid) == [protocol.STOPPING_SIGNAL] and launcher.signals_to(idle.pid) == []

    pool.wind_down(kill_running=True)
    assert launcher.signals_to(busy.pid) == [protocol.STOPPING_SIGNAL, signal.SIGTERM] and busy.exit_reason == "drain timeout"
    clock.advance(defaults.DRAIN_KILL_GRACE_SECONDS + 0.1)
    pool.check_timeouts()
    assert launcher.signals_to(busy.pid) == [protocol.STOPPING_SIGNAL, signal.SIGTERM, signal.SIGKILL]


def test_a_worker_that_exits_holding_jobs_reports_the_running_one_and_those_it_never_began(
    launcher: FakeLauncher, clock: ManualClock
) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    pool.pipeline.record("t.short", 0.001)  # short jobs may wait behind each other in a worker's pipe
    assert pool.assign(worker, [(job(1, "t.short"), 60.0), (job(2, "t.short"), 60.0)])
    launcher.kill(worker.pid)

    (exit,) = pool.reap()
    assert exit.assignment is not None and exit.assignment.job.id == 1
    assert [held.job.id for held in exit.unstarted] == [2]
    assert exit.reason == "worker killed by SIGKILL while running the job"


def test_the_backlog_feeds_the_least_loaded_workers_and_keeps_the_rest(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=2)
    first, second = ready(pool)
    pool.hold([job(n) for n in (1, 2, 3)])

    started = pool.feed(lambda _job: 60.0)

    assert sorted((worker.pid, j.id) for worker, j in started) == sorted([(first.pid, 1), (second.pid, 2)])
    assert pool.waiting == 1 and pool.room() == 0
    assert pool.held_job_ids() == {1, 2, 3}
    assert [message.job_id for message in launcher.workers[first.pid].read() if isinstance(message, protocol.RunJob)] == [1]
    finish(pool, first, 1)
    assert [(worker.pid, j.id) for worker, j in pool.feed(lambda _job: 60.0)] == [(first.pid, 3)]


def test_a_job_the_feed_cannot_admit_is_dropped_without_taking_a_worker(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    pool.hold([job(1), job(2)])
    started = pool.feed(lambda candidate: None if candidate.id == 1 else 60.0)
    assert [(w.pid, j.id) for w, j in started] == [(worker.pid, 2)] and pool.waiting == 0


def test_the_backlog_feeds_the_most_urgent_job_first_and_equal_ones_in_claim_order(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    pool.hold([job(1), job(2), job(3)])
    pool.hold([job(4, priority=100), job(5, priority=-1), job(6)])
    assert pool.lowest_waiting_priority() == -1

    assert [j.id for _worker, j in pool.feed(lambda _job: 60.0)] == [4]
    finish(pool, worker, 4)
    fed = [j.id for _worker, j in pool.feed(lambda _job: 60.0)]  # short jobs: maybe more than one
    assert fed == [1, 2, 3, 6, 5][:len(fed)]
    assert [j.id for j in pool.give_back()] == [1, 2, 3, 6, 5][len(fed):]
    behind_running = [{1: 0, 2: 0, 3: 0, 6: 0, 5: -1}[job_id] for job_id in fed[1:]]  # they wait in the worker's pipe
    assert pool.lowest_waiting_priority() == min(behind_running, default=None)


def test_a_job_more_urgent_than_all_a_full_worker_holds_goes_to_it_past_its_depth(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    pool.pipeline.record("t.short", 0.001)  # short jobs: a few milliseconds' worth may wait in the worker
    depth = pool.depth()
    pool.hold([job(n, "t.short") for n in range(1, depth + 2)])
    assert len(pool.feed(lambda _job: 60.0)) == depth and pool.room() == 0
    pool.hold([job(100, "t.short", priority=100), job(101, "t.short", priority=100)])

    assert [j.id for _worker, j in pool.feed(lambda _job: 60.0)] == [100], "one job jumps, not the backlog"
    assert [j.id for _worker, j in pool.feed(lambda _job: 60.0)] == [], "no more than the worker's most urgent"
    assert pool.waiting == 2


def test_no_job_jumps_into_a_worker_running_a_job_that_may_be_long(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    pool.pipeline.record("t.short", 0.001)
    assert pool.assign(worker, [(job(1, "t.slow"), 60.0)])
    pool.hold([job(2, "t.short", priority=100)])
    assert pool.feed(lambda _job: 60.0) == [] and pool.waiting == 1


def test_a_job_the_worker_started_ahead_of_others_becomes_its_running_one(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    assert pool.assign(worker, [(job(1, "t.short"), 60.0), (job(2, "t.short"), 60.0), (job(3, "t.short", priority=100), 60.0)])
    clock.advance(1.0)

    pool.on_message(worker, protocol.JobJumpedAhead(3))

    assert [held.job.id for held in worker.assignments] == [3, 1, 2]
    assert worker.assignment is not None and worker.assignment.started_at == clock.now  # its timeout counts from now
    assert pool.on_message(worker, protocol.JobFinished(3, 1, "succeeded")) is not None


def test_a_job_reported_just_before_its_worker_exited_is_read_at_the_reap_not_returned_as_unstarted(
    launcher: FakeLauncher, clock: ManualClock,
) -> None:
    pool = make_pool(launcher, clock, workers=1)
    (worker,) = ready(pool)
    assert pool.assign(worker, [(job(1, "t.short"), 60.0), (job(2, "t.short"), 60.0)])
    pool.retire(worker)  # `jobd stop`: it reports its running job, then exits, before the master's next read
    launcher.workers[worker.pid].worker_end.send_bytes(protocol.encode([protocol.JobFinished(1, 1, "succeeded")]))
    launcher.exit(worker.pid, 0)

    (exit,) = pool.reap()

    assert [(held.job.id, finished.outcome) for held, finished in exit.reported] == [(1, "succeeded")]
    assert exit.assignment is None and [held.job.id for held in exit.unstarted] == [2]


def test_the_backlog_gives_back_and_withdraws_what_waits(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=0)
    pool.hold([job(1), job(2), job(3)])
    withdrawn = pool.withdraw(2)
    assert withdrawn is not None and withdrawn.id == 2 and pool.withdraw(2) is None
    assert [j.id for j in pool.give_back()] == [1, 3] and pool.waiting == 0


def test_a_scale_down_retires_idle_workers_first_then_tells_a_busy_one_it_is_stopping_once(launcher: FakeLauncher, clock: ManualClock) -> None:
    pool = make_pool(launcher, clock, workers=3)
    first, second, idle = ready(pool)
    assert pool.assign(first, [(job(1), 600.0)]) and pool.assign(second, [(job(2), 600.0)])

    pool.size = 2
    pool.maintain()
    assert idle.state is WorkerState.STOPPING and launcher.signals_to(idle.pid) == []
    assert first.state is WorkerState.BUSY and second.state is WorkerState.BUSY

    pool.size = 1
    pool.maintain()
    pool.maintain()  # asked again on the next tick: told once
    (retired,) = [worker for worker in (first, second) if worker.state is WorkerState.STOPPING]
    assert launcher.signals_to(retired.pid) == [protocol.STOPPING_SIGNAL]
    assert pool.size == len(pool.serving_workers())
