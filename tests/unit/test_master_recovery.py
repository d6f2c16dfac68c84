"""Recovering a dead master's jobs: what it never began goes back uncharged, before anyone may re-queue it.

The fencing itself (killing the dead run's processes, reading its workers'
ledgers) is specified by the process tests in ``tests/faults``; here the
fence's verdict is given, and the order of the store writes is the subject.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobd.master import Master
from jobd.master.lease import LeaseKeeper
from jobd.states import JobState
from jobd.store import NewJob
from jobd.workers.fence import Fenced

from .fakes import FakeLauncher, ManualClock
from .test_master_dispatch import application, built_master

VICTIM = "victim:1"


@pytest.fixture
def master(tmp_path: Path, launcher: FakeLauncher, clock: ManualClock) -> Iterator[Master]:
    with built_master(tmp_path, launcher, clock, "t.work") as built:
        yield built


def a_dead_master_holding(master: Master, count: int) -> list[int]:
    """A silent master (its heartbeat a minute old) that claimed ``count`` jobs: running, attempt 1."""
    store = master.store
    store.masters.register(VICTIM, pid=2**22 + 1, version="test", daemons=["main"], control_socket=None, now=time.time() - 60)
    ids = [application(master).jobs.insert(NewJob("main", "t.work", {})) for _ in range(count)]
    claimed = store.jobs.claim("main", count, VICTIM)
    assert sorted(job.id for job in claimed) == sorted(ids)
    return ids


def test_the_jobs_a_dead_master_never_began_are_refunded_before_it_is_declared_dead(
    master: Master, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = a_dead_master_holding(master, 4)
    began = ids[0]
    monkeypatch.setattr(LeaseKeeper, "_fenced", staticmethod(lambda record: Fenced(VICTIM, frozenset({(began, 1)}))))
    # Once it is declared dead, any master's requeue_orphans re-queues what it still holds with the attempt
    # charged; so whoever declares it dead must already have given back the attempts of the jobs never begun.
    seen_at_declaration: dict[int, tuple[JobState, int]] = {}
    declare_dead = master.store.masters.declare_dead

    def declare_dead_and_look(record, **kwargs):  # type: ignore[no-untyped-def]
        seen_at_declaration.update({job: (master.store.jobs.get(job).state, master.store.jobs.get(job).attempts) for job in ids})
        return declare_dead(record, **kwargs)

    monkeypatch.setattr(master.store.masters, "declare_dead", declare_dead_and_look)
    master.lease_keeper.recover_orphans()

    assert seen_at_declaration == {began: (JobState.RUNNING, 1)} | {job: (JobState.QUEUED, 0) for job in ids[1:]}
    assert [master.store.jobs.get(job).attempts for job in ids] == [1, 0, 0, 0]  # the begun one: re-queued, charged
    assert all(master.store.jobs.get(job).state is JobState.QUEUED for job in ids)


def test_a_master_that_loses_the_race_to_declare_it_dead_still_refunds_before_re_queueing(
    master: Master, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = a_dead_master_holding(master, 3)
    monkeypatch.setattr(LeaseKeeper, "_fenced", staticmethod(lambda record: Fenced(VICTIM, frozenset())))
    monkeypatch.setattr(master.store.masters, "declare_dead", lambda record, **kwargs: False)  # another master won

    master.lease_keeper.recover_orphans()

    assert [master.store.jobs.get(job).attempts for job in ids] == [0, 0, 0]
