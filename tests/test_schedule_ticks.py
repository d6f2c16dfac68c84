"""A tick in the store: every due entry decided in one transaction, each tick once, its jobs claimable as they are made.

Runs against every backend (SQLite, MariaDB) through the ``store`` fixture.
"""

from __future__ import annotations

import datetime as dt
import random

from jobd.schedules import ScheduleEntry, fire_key, parse_schedule_text
from jobd.states import JobState
from jobd.store import NewJob, Store
from jobd.store.schedules import TickClaim

START = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=30)  # ticks lie in the past
OWNER = "host:1:abcdef12"


def entries(count: int, **settings: str) -> list[ScheduleEntry]:
    """``count`` per-second entries of daemon ``main`` (``e000``, ``e001``, …) with extra ``settings``."""
    extra = "".join(f'{key} = "{value}"\n' for key, value in settings.items())
    text = "".join(
        f'[entries.e{number:03d}]\ndaemon = "main"\ntask = "t.tick"\nevery = "1s"\nmisfire = "skip"\n{extra}'
        for number in range(count)
    )
    return list(parse_schedule_text(text, "ticks.toml", "UTC").values())


def started(store: Store, schedule: list[ScheduleEntry]) -> list[tuple[ScheduleEntry, bool]]:
    """The entries, ticked once at ``START`` (a new entry's history starts then: nothing fires)."""
    due = [(entry, False) for entry in schedule]
    assert not any(result.fired for result in store.schedules.tick_many(due, START).values())
    return due


def test_every_due_entry_fires_its_tick_once_however_often_it_is_decided(store: Store) -> None:
    due = started(store, entries(30))
    now = START + dt.timedelta(seconds=1)
    first = store.schedules.tick_many(due, now)
    again = store.schedules.tick_many(due, now)
    assert all(len(result.fired) == 1 for result in first.values())
    assert not any(result.fired for result in again.values()), "a decided tick never fires again"
    jobs = {store.jobs.get(result.fired[0]).fire_key: name for name, result in first.items()}
    assert jobs == {fire_key(name, now): name for name in first}
    assert all(store.jobs.get(result.fired[0]).state is JobState.QUEUED for result in first.values())
    states = store.schedules.states()
    assert all(states[name].fired == 1 and states[name].last_job_id == result.fired[0] for name, result in first.items())


def test_a_claiming_master_gets_the_new_jobs_running_as_a_claim_writes_them_up_to_its_limit(store: Store) -> None:
    due = started(store, entries(5))
    results = store.schedules.tick_many(due, START + dt.timedelta(seconds=1), claim=TickClaim(OWNER, {"main": 3}))
    claimed = [job for result in results.values() for job in result.claimed]
    assert len(claimed) == 3
    for job in claimed:
        stored = store.jobs.get(job.id)
        assert (stored.state, stored.owner, stored.attempts) == (JobState.RUNNING, OWNER, 1)
        assert (job.state, job.owner, job.attempts, job.task, job.fire_key) == (
            stored.state, stored.owner, stored.attempts, stored.task, stored.fire_key)
        assert stored.started_at is not None
    fired = [job_id for result in results.values() for job_id in result.fired]
    left = [store.jobs.get(job_id) for job_id in fired if job_id not in {job.id for job in claimed}]
    assert [(job.state, job.owner, job.attempts) for job in left] == [(JobState.QUEUED, None, 0)] * 2
    taken = store.jobs.claim("main", 10, "other-master")
    assert sorted(job.id for job in taken) == sorted(job.id for job in left), "the claimed ticks belong to their master"


def test_a_tick_never_takes_a_job_ahead_of_a_due_queued_one(store: Store) -> None:
    due = started(store, entries(2))
    waiting = store.jobs.insert(NewJob(daemon="main", task="t.waiting", args={}))
    results = store.schedules.tick_many(due, START + dt.timedelta(seconds=1), claim=TickClaim(OWNER, {"main": 10}))
    assert not any(result.claimed for result in results.values())
    assert [job.id for job in store.jobs.claim("main", 1, OWNER)] == [waiting], "the older job is claimed first"


def test_a_tick_claims_nothing_for_a_daemon_the_claim_has_no_room_for_or_a_jittered_job(store: Store) -> None:
    due = started(store, [*entries(2), *entries(1, jitter="1h")][1:])  # e001 plain, e000 jittered
    results = store.schedules.tick_many(
        due, START + dt.timedelta(seconds=1), claim=TickClaim(OWNER, {"main": 5}), rng=random.Random(7))
    jittered = store.jobs.get(results["e000"].fired[0])
    assert jittered.state is JobState.SCHEDULED and not results["e000"].claimed
    assert [job.id for job in results["e001"].claimed] == results["e001"].fired
    later = store.schedules.tick_many(due, START + dt.timedelta(seconds=2), claim=TickClaim(OWNER, {"other": 5}))
    assert not any(result.claimed for result in later.values())


def test_a_tick_whose_fire_key_is_taken_leaves_only_that_tick_out(store: Store) -> None:
    due = started(store, entries(4))
    now = START + dt.timedelta(seconds=1)
    holder = store.jobs.insert(NewJob(daemon="main", task="t.tick", args={}, fire_key=fire_key("e002", now), origin="schedule"))
    store.jobs.claim("main", 1, "elsewhere")  # not queued any more: nothing waits ahead of the tick
    results = store.schedules.tick_many(due, now, claim=TickClaim(OWNER, {"main": 10}))
    assert results["e002"].fired == [] and store.jobs.get(holder).fire_key == fire_key("e002", now)
    assert all(len(results[name].fired) == 1 and results[name].claimed for name in ("e000", "e001", "e003"))


def test_overlap_is_decided_per_entry_in_the_batch(store: Store) -> None:
    forbid = entries(1, overlap="forbid")
    replace = [entry for entry in entries(2, overlap="replace") if entry.name == "e001"]
    allow = [entry for entry in entries(3, overlap="allow") if entry.name == "e002"]
    due = started(store, [*forbid, *replace, *allow])
    first = store.schedules.tick_many(due, START + dt.timedelta(seconds=1))
    second = store.schedules.tick_many(due, START + dt.timedelta(seconds=2))  # every first job still queued
    assert (second["e000"].fired, second["e000"].skipped) == ([], 1)
    assert store.jobs.get(first["e001"].fired[0]).state is JobState.CANCELLED and len(second["e001"].fired) == 1
    assert len(second["e002"].fired) == 1 and store.jobs.get(first["e002"].fired[0]).state is JobState.QUEUED
    assert store.schedules.states()["e000"].skipped == 1
