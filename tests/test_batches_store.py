"""Batches in the store, on SQLite and MariaDB: counters kept with members' endings, callbacks exactly once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from jobd.batch_record import BatchState, Callback
from jobd.errors import InvalidArgs, InvalidTransition
from jobd.job import Job
from jobd.states import JobState
from jobd.store import SCHEMA_VERSION, NewJob, Store, open_store
from jobd.store.jobs import Outcome

DONE = Callback("reports", "campaign.done", {"campaign": 42})
ALERT = Callback("reports", "campaign.alert", {"campaign": 42})


@pytest.fixture
def store(store_both_ways: Store) -> Store:
    """Every test here runs on the store through SQLAlchemy and the master's way, through the driver."""
    return store_both_ways


def members(store: Store, batch_id: int, count: int, **kwargs: Any) -> list[int]:
    return store.batches.add_members(batch_id, [NewJob("main", "t.record", {"n": n}, **kwargs) for n in range(count)])


def end(store: Store, owner: str, jobs: list[Job], state: JobState) -> int:
    values: dict[str, Any] = {"result": None} if state is JobState.SUCCEEDED else {"error": "boom", "traceback": None, "run_at": None}
    if state is JobState.CANCELLED:
        values = {"error": "cancelled"}
    return store.jobs.apply_outcomes(owner, [Outcome(job.id, job.attempts, state, values, job.batch_id) for job in jobs])


def callbacks(store: Store) -> list[Job]:
    return [job for job in store.jobs.list(limit=1000) if job.origin == "batch"]


def test_a_sealed_batch_completes_with_its_last_member_and_queues_on_complete_once_with_the_counts(store: Store) -> None:
    batch_id = store.batches.create("campaign-42", on_complete=DONE, on_failure=ALERT)
    members(store, batch_id, 4)
    assert store.batches.seal(batch_id).state is BatchState.OPEN
    claimed = store.jobs.claim("main", 4, "m1")
    assert {job.batch_id for job in claimed} == {batch_id}

    end(store, "m1", claimed[:2], JobState.SUCCEEDED)
    end(store, "m1", claimed[2:3], JobState.CANCELLED)
    batch = store.batches.get(batch_id)
    assert (batch.state, batch.total, batch.succeeded, batch.cancelled, batch.pending) == (BatchState.OPEN, 4, 2, 1, 1)
    assert callbacks(store) == []

    end(store, "m1", claimed[3:], JobState.SUCCEEDED)
    end(store, "m1", claimed[3:], JobState.SUCCEEDED)  # a repeated write of the same ending changes nothing
    batch = store.batches.get(batch_id)
    assert (batch.state, batch.succeeded, batch.dead, batch.cancelled) == (BatchState.COMPLETE, 3, 0, 1)
    (callback,) = callbacks(store)
    assert batch.complete_job_id == callback.id and batch.failure_job_id is None
    assert (callback.daemon, callback.task, callback.state, callback.batch_id) == ("reports", "campaign.done", JobState.QUEUED, None)
    assert callback.args == {"campaign": 42, "batch": {
        "id": batch_id, "name": "campaign-42", "total": 4, "succeeded": 3, "dead": 0, "cancelled": 1}}


def test_an_unsealed_batch_waits_however_many_members_finished_and_completes_when_sealed(store: Store) -> None:
    batch_id = store.batches.create("b", on_complete=DONE)
    members(store, batch_id, 2)
    end(store, "m1", store.jobs.claim("main", 2, "m1"), JobState.SUCCEEDED)
    assert store.batches.get(batch_id).state is BatchState.OPEN and callbacks(store) == []
    assert store.batches.seal(batch_id).state is BatchState.COMPLETE
    assert store.batches.seal(batch_id).state is BatchState.COMPLETE
    assert len(callbacks(store)) == 1


def test_the_first_dead_member_queues_on_failure_once_and_the_batch_still_completes(store: Store) -> None:
    batch_id = store.batches.create("b", on_complete=DONE, on_failure=ALERT)
    members(store, batch_id, 3)
    store.batches.seal(batch_id)
    first, second, third = store.jobs.claim("main", 3, "m1")
    end(store, "m1", [first], JobState.DEAD)
    # Another ending with other values (a worker that died on its last attempt): its own group, counted too.
    outcome = Outcome(second.id, second.attempts, JobState.DEAD, {"error": "crashed", "traceback": None, "run_at": None}, batch_id)
    assert store.jobs.apply_outcomes("m1", [outcome]) == 1
    batch = store.batches.get(batch_id)
    assert (batch.state, batch.dead) == (BatchState.OPEN, 2)
    (alert,) = callbacks(store)
    assert alert.task == "campaign.alert" and alert.args["batch"]["dead"] == 1 and batch.failure_job_id == alert.id

    end(store, "m1", [third], JobState.SUCCEEDED)
    assert [job.task for job in callbacks(store)] == ["campaign.done", "campaign.alert"]
    assert store.batches.get(batch_id).state is BatchState.COMPLETE


def test_retrying_a_dead_member_takes_it_out_of_the_dead_count_until_it_ends_again(store: Store) -> None:
    batch_id = store.batches.create("b", on_complete=DONE)
    (member,) = members(store, batch_id, 1)
    store.batches.seal(batch_id)
    end(store, "m1", store.jobs.claim("main", 1, "m1"), JobState.DEAD)
    assert store.batches.get(batch_id).state is BatchState.COMPLETE  # its only member finished (dead)
    other = store.batches.create("c", on_complete=DONE)
    (second, third) = members(store, other, 2)
    end(store, "m1", store.jobs.claim("main", 1, "m1"), JobState.DEAD)
    store.jobs.retry(second)
    assert store.batches.get(other).dead == 0
    store.batches.seal(other)
    end(store, "m1", store.jobs.claim("main", 2, "m1"), JobState.SUCCEEDED)
    batch = store.batches.get(other)
    assert (batch.state, batch.succeeded, batch.dead) == (BatchState.COMPLETE, 2, 0)
    store.jobs.retry(member)  # a complete batch's counts stay as they were when it completed
    assert store.batches.get(batch_id).dead == 1


def test_a_sealed_batch_takes_members_only_from_its_own_running_members(store: Store) -> None:
    batch_id = store.batches.create("fan-out", on_complete=DONE)
    members(store, batch_id, 1)
    store.batches.seal(batch_id)
    with pytest.raises(InvalidTransition, match="sealed"):
        members(store, batch_id, 1)
    outsider = store.jobs.insert(NewJob("other", "t.record", {}))
    with pytest.raises(InvalidTransition, match="not a running member"):
        store.batches.add_members(batch_id, [NewJob("main", "t.record", {})], by_member=outsider)
    (parent,) = store.jobs.claim("main", 1, "m1")
    with pytest.raises(InvalidArgs, match="unique key"):
        store.batches.add_members(batch_id, [NewJob("main", "t.record", {}, unique_key="k")], by_member=parent.id)

    children = store.batches.add_members(batch_id, [NewJob("main", "t.record", {"n": n}) for n in range(3)], by_member=parent.id)
    end(store, "m1", [parent], JobState.SUCCEEDED)  # the parent ends first: its children keep the batch open
    assert store.batches.get(batch_id).state is BatchState.OPEN
    claimed = store.jobs.claim("main", 5, "m1")
    assert sorted(job.id for job in claimed) == children
    end(store, "m1", claimed, JobState.SUCCEEDED)
    batch = store.batches.get(batch_id)
    assert (batch.state, batch.total, batch.succeeded) == (BatchState.COMPLETE, 4, 4) and len(callbacks(store)) == 1


def test_cancelling_a_batch_cancels_its_waiting_members_flags_running_ones_and_queues_no_callback(store: Store) -> None:
    batch_id = store.batches.create("b", on_complete=DONE, on_failure=ALERT)
    ids = members(store, batch_id, 4)
    store.batches.seal(batch_id)
    (running,) = store.jobs.claim("main", 1, "m1")
    batch = store.batches.cancel(batch_id)
    assert (batch.state, batch.cancelled) == (BatchState.CANCELLED, 3)
    states = {job_id: store.jobs.get(job_id) for job_id in ids}
    assert [job.state for job in states.values()].count(JobState.CANCELLED) == 3
    assert states[running.id].state is JobState.RUNNING and states[running.id].cancel_requested
    end(store, "m1", [running], JobState.CANCELLED)
    assert store.batches.get(batch_id).cancelled == 4 and callbacks(store) == []
    with pytest.raises(InvalidTransition):
        store.batches.cancel(batch_id)
    assert store.batches.member_states(batch_id) == {"cancelled": 4}


def test_batches_that_ended_before_the_retention_are_pruned_and_open_ones_stay(store: Store) -> None:
    ended = store.batches.create("old", now=1_000.0)
    store.batches.seal(ended, now=1_000.0)  # no members: complete at once
    still_open = store.batches.create("older but open", now=500.0)
    assert store.batches.prune(older_than=2_000.0) == 1
    assert [batch.id for batch in store.batches.list()] == [still_open]


def test_two_masters_ending_the_last_members_at_once_queue_on_complete_exactly_once(store_url: str) -> None:
    """Each round's two members end in two transactions racing on two connections: one of them completes it."""
    masters = [open_store(store_url), open_store(store_url)]
    masters[0].initialise()
    try:
        rounds = 30
        batch_ids = [masters[0].batches.create("race", on_complete=DONE, on_failure=ALERT) for _ in range(rounds)]
        for _member in range(2):  # the first members of every batch, then the second ones: the claims split them
            for batch_id in batch_ids:
                masters[0].batches.add_members(batch_id, [NewJob("main", "t.record", {})])
        for batch_id in batch_ids:
            masters[0].batches.seal(batch_id)
        held = [masters[index].jobs.claim("main", rounds, f"m{index}") for index in (0, 1)]
        assert all(len(jobs) == rounds for jobs in held)
        by_batch = [{job.batch_id: job for job in jobs} for jobs in held]
        assert all(set(claimed) == set(batch_ids) for claimed in by_batch), "each master holds one member of every batch"
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def finish(index: int) -> None:
            try:
                for batch_id in batch_ids:
                    start.wait(timeout=30)
                    state = JobState.DEAD if index == 1 else JobState.SUCCEEDED
                    end(masters[index], f"m{index}", [by_batch[index][batch_id]], state)
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=finish, args=(index,)) for index in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors
        for batch_id in batch_ids:
            batch = masters[0].batches.get(batch_id)
            assert (batch.state, batch.succeeded, batch.dead) == (BatchState.COMPLETE, 1, 1)
        found = callbacks(masters[0])
        assert sorted(job.task for job in found) == sorted(["campaign.done", "campaign.alert"] * rounds)
        assert len({(job.task, job.args["batch"]["id"]) for job in found}) == 2 * rounds, "a callback was queued twice"
        done = [job for job in found if job.task == "campaign.done"]
        assert all(job.args["batch"]["succeeded"] == 1 and job.args["batch"]["dead"] == 1 for job in done)
    finally:
        for opened in masters:
            opened.dispose()


def test_a_v6_store_gains_batches_and_keeps_its_jobs(store: Store) -> None:
    job_id = store.jobs.insert(NewJob("main", "t.record", {}))
    with store.engine.begin() as connection:
        store.tables["batches"].drop(connection)
        connection.exec_driver_sql("DROP INDEX jobd_jobs_batch" + (" ON jobd_jobs" if store.jobs.is_mysql else ""))
        connection.exec_driver_sql("ALTER TABLE jobd_jobs DROP COLUMN batch_id")
        meta = store.tables["meta"]
        connection.execute(meta.update().where(meta.c.key == "schema_version").values(value="6"))
    assert "batch_id" not in {column["name"] for column in sa.inspect(store.engine).get_columns("jobd_jobs")}

    assert store.initialise() == SCHEMA_VERSION == 8
    assert store.version() == 8 and store.initialise() == 8
    assert store.jobs.get(job_id).state is JobState.QUEUED and store.jobs.get(job_id).batch_id is None
    batch_id = store.batches.create("after the upgrade")
    assert store.jobs.get(members(store, batch_id, 1)[0]).batch_id == batch_id
