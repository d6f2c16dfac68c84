"""The store contract: every backend (SQLite, MariaDB) must pass this same module."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jobd.errors import InvalidTransition, StoreUnavailable, UnknownJob
from jobd.states import JobState
from jobd.store import SCHEMA_VERSION, NewJob, Store, open_store
from jobd.store.errors import StoreFault, is_store_error
from jobd.store.task_catalogue import CatalogueRow
from jobd.store import cursor_sql as direct
from jobd.job import encode_json
from jobd.store.jobs import Outcome
from faults.rows_sql import downgrade_keys_to_v7


@pytest.fixture
def store(store_both_ways: Store) -> Store:
    """Every test here runs on the store through SQLAlchemy and the master's way, through the driver."""
    return store_both_ways


def new(task: str = "t.record", **kwargs) -> NewJob:  # type: ignore[no-untyped-def]
    return NewJob(daemon=kwargs.pop("daemon", "main"), task=task, args=kwargs.pop("args", {}), **kwargs)


def succeed(store: Store, job_id: int, attempt: int, owner: str, result: Any, *, now: float | None = None) -> bool:
    """Record a success the way the master does (``apply_outcomes``); False if that attempt is not the owner's."""
    return store.jobs.apply_outcomes(owner, [Outcome(job_id, attempt, JobState.SUCCEEDED, {"result": encode_json(result)})], now=now) == 1


def fail(
    store: Store, job_id: int, attempt: int, owner: str, *, error: str, traceback: str | None, retry_at: float | None,
    now: float | None = None,
) -> bool:
    """Record a failed attempt the way the master does: ``retrying`` until ``retry_at``, ``dead`` if None."""
    state = JobState.RETRYING if retry_at is not None else JobState.DEAD
    values = {"error": error, "traceback": traceback, "run_at": retry_at}
    return store.jobs.apply_outcomes(owner, [Outcome(job_id, attempt, state, values)], now=now) == 1


def test_initialise_is_idempotent_and_versioned(store: Store) -> None:
    assert store.initialise() == store.initialise() == SCHEMA_VERSION
    assert store.version() == SCHEMA_VERSION
    store.require_schema()


def _set_version(store: Store, version: int) -> None:
    meta = store.tables["meta"]
    with store.engine.begin() as connection:
        connection.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(version)))


def _index_definitions(store: Store) -> list[tuple[object, ...]]:
    """The jobs table's indexes as the database reports them: name, columns, uniqueness, options."""
    return sorted(
        (index["name"], tuple(index["column_names"]), bool(index["unique"]),
         {option: str(value) for option, value in index.get("dialect_options", {}).items()})
        for index in sa.inspect(store.engine).get_indexes("jobd_jobs")
    )


def _sqlite_index_sql(store: Store) -> dict[str, str]:
    with store.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobd_jobs' AND sql IS NOT NULL"
        ).all()
    return {name: sql for name, sql in rows}


def test_a_v2_store_upgrades_to_the_current_schema_and_keeps_its_jobs(store: Store) -> None:
    """v3 changes only SQLite's indexes; v4 adds the state CHECK; v5 rate buckets; v6 the task catalogue; v7 batches; v8 SQLite's key indexes (the rows and indexes stay as they were)."""
    job_ids = [store.jobs.insert(new(run_at=run_at), now=1_000.0) for run_at in (None, 2_000.0)]
    store.jobs.claim("main", 1, "m1", now=1_000.0)
    indexes_before = _index_definitions(store)
    _set_version(store, 2)
    assert store.version() == 2
    assert store.initialise() == SCHEMA_VERSION == 8
    assert store.version() == 8 and store.initialise() == 8
    assert _index_definitions(store) == indexes_before
    assert [store.jobs.get(job_id).state for job_id in job_ids] == [JobState.RUNNING, JobState.SCHEDULED]


def test_a_v2_sqlite_store_gets_partial_indexes(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}")
    try:
        store.initialise()
        job_ids = [store.jobs.insert(new(run_at=run_at), now=1_000.0) for run_at in (None, 2_000.0)]
        store.jobs.claim("main", 1, "m1", now=1_000.0)
        downgrade_keys_to_v7(store)  # the key columns unique through table constraints
        with store.engine.begin() as connection:  # make it look like jobd v2 left it: full indexes
            for name, columns in [("jobs_waiting", "state, run_at"), ("jobs_owner", "owner, state"),
                                  ("jobs_state_finished", "state, finished_at")]:
                connection.exec_driver_sql(f"DROP INDEX jobd_{name}")
                connection.exec_driver_sql(f"CREATE INDEX jobd_{name} ON jobd_jobs ({columns})")
            connection.exec_driver_sql("DROP INDEX jobd_jobs_undated")  # v4's
            connection.exec_driver_sql("DROP INDEX jobd_jobs_batch")  # v7's
        _set_version(store, 2)
        assert not any("WHERE" in sql for sql in _sqlite_index_sql(store).values())

        assert store.initialise() == SCHEMA_VERSION and store.version() == SCHEMA_VERSION
        indexes = _sqlite_index_sql(store)
        assert indexes["jobd_jobs_waiting"].endswith("WHERE run_at IS NOT NULL")
        assert indexes["jobd_jobs_owner"].endswith("WHERE owner IS NOT NULL")
        assert indexes["jobd_jobs_state_finished"].endswith("WHERE finished_at IS NOT NULL")
        assert "WHERE" not in indexes["jobd_jobs_ready"]
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"

        _set_version(store, 2)  # an upgrade run again (say, interrupted before it recorded v3) changes nothing
        assert store.initialise() == SCHEMA_VERSION and _sqlite_index_sql(store) == indexes
        assert [store.jobs.get(job_id).state for job_id in job_ids] == [JobState.RUNNING, JobState.SCHEDULED]
        assert [job.id for job in store.jobs.claim("main", 5, "m1", now=2_000.0)] == [job_ids[1]]
    finally:
        store.dispose()


def _query_plan(store: Store, sql: str, parameters: tuple[object, ...]) -> str:
    with store.engine.connect() as connection:
        return " ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters))


def test_sqlite_keeps_the_key_columns_unique_through_partial_indexes_that_lookups_use(tmp_path: Path) -> None:
    """v8: a plain job (no unique key, no fire key) adds no entry to the key indexes; lookups by key still use them."""
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}")
    try:
        store.initialise()
        indexes = _sqlite_index_sql(store)
        assert indexes["jobd_jobs_unique_key"].startswith("CREATE UNIQUE INDEX")
        assert indexes["jobd_jobs_unique_key"].endswith("WHERE unique_key IS NOT NULL")
        assert indexes["jobd_jobs_fire_key"].endswith("WHERE fire_key IS NOT NULL")
        assert "UNIQUE" not in _sqlite_table_sql(store)
        assert "INDEX jobd_jobs_unique_key (unique_key" in _query_plan(store, "SELECT id FROM jobd_jobs WHERE unique_key = ?", ("k",))
        assert "INDEX jobd_jobs_unique_key (unique_key" in _query_plan(
            store, "SELECT id, unique_key FROM jobd_jobs WHERE unique_key IN (?, ?)", ("a", "b"))

        first = store.jobs.insert(new(unique_key="mail-42"))
        assert store.jobs.insert(new(unique_key="mail-42")) == first  # the unfinished job holding the key
        store.jobs.insert(new())
        with pytest.raises(sa.exc.IntegrityError, match="unique_key"):
            with store.engine.begin() as connection:
                connection.exec_driver_sql(
                    "INSERT INTO jobd_jobs (daemon, task, args, unique_key) VALUES ('main', 't.x', '{}', 'mail-42')")
    finally:
        store.dispose()


def test_a_v7_sqlite_store_is_rebuilt_with_partial_key_indexes_and_keeps_its_jobs(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}")
    try:
        store.initialise()
        keyed = store.jobs.insert(new(unique_key="report-7"), now=1_000.0)
        plain = store.jobs.insert(new(run_at=2_000.0), now=1_000.0)
        downgrade_keys_to_v7(store)
        assert "jobd_jobs_unique_key UNIQUE" in _sqlite_table_sql(store) and "jobd_jobs_unique_key" not in _sqlite_index_sql(store)

        assert store.initialise() == SCHEMA_VERSION == 8
        assert "UNIQUE" not in _sqlite_table_sql(store)
        indexes = _sqlite_index_sql(store)
        assert indexes["jobd_jobs_unique_key"].endswith("WHERE unique_key IS NOT NULL")
        assert {"jobd_jobs_ready", "jobd_jobs_waiting", "jobd_jobs_owner", "jobd_jobs_state_finished",
                "jobd_jobs_undated", "jobd_jobs_batch", "jobd_jobs_fire_key"} <= set(indexes)
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        assert store.jobs.insert(new(unique_key="report-7")) == keyed  # the key still holds
        assert [store.jobs.get(job_id).state for job_id in (keyed, plain)] == [JobState.QUEUED, JobState.SCHEDULED]

        _set_version(store, 7)  # an upgrade run again (interrupted before it recorded v8) copies nothing again
        assert store.initialise() == 8 and _sqlite_index_sql(store) == indexes
    finally:
        store.dispose()


def _sqlite_table_sql(store: Store) -> str:
    with store.engine.connect() as connection:
        return str(connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'jobd_jobs'").scalar())


@pytest.mark.parametrize("version, tables_it_lacks", [(4, ["rate_buckets", "task_catalogue"]), (5, ["task_catalogue"])])
def test_a_v4_or_v5_store_gains_the_task_catalogue_and_keeps_its_jobs(store: Store, version: int, tables_it_lacks: list[str]) -> None:
    """v6 only adds the task catalogue's table (v7 batches): a store an older jobd left behind upgrades in place."""
    job_id = store.jobs.insert(new(), now=1_000.0)
    with store.engine.begin() as connection:
        for name in tables_it_lacks:
            store.tables[name].drop(connection)
    _set_version(store, version)
    assert not sa.inspect(store.engine).has_table("jobd_task_catalogue")

    assert store.initialise() == SCHEMA_VERSION == 8
    assert store.version() == 8 and store.task_catalogue.read() == []
    assert store.task_catalogue.publish([CatalogueRow("main", "v1", '{"tasks": {}}', 1.0)]) == ["main"]
    assert store.jobs.get(job_id).state == JobState.QUEUED


def test_a_store_newer_than_this_jobd_is_refused(store: Store) -> None:
    _set_version(store, SCHEMA_VERSION + 1)
    with pytest.raises(StoreUnavailable, match="newer than this jobd"):
        store.initialise()
    assert store.version() == SCHEMA_VERSION + 1


def test_uninitialised_store_says_to_run_init(store_url: str) -> None:
    fresh = open_store(store_url)
    with pytest.raises(Exception, match="jobd init"):
        fresh.require_schema()


def test_insert_commits_a_queued_job_with_its_args(store: Store) -> None:
    job_id = store.jobs.insert(new(args={"campaign": 42, "name": "żółw"}))
    job = store.jobs.get(job_id)
    assert job.state is JobState.QUEUED
    assert job.args == {"campaign": 42, "name": "żółw"}
    assert job.attempts == 0


def test_a_job_due_later_is_scheduled_and_not_claimed_early(store: Store) -> None:
    job_id = store.jobs.insert(new(run_at=2_000.0), now=1_000.0)
    assert store.jobs.get(job_id).state is JobState.SCHEDULED
    assert store.jobs.claim("main", 10, "m1", now=1_500.0) == []
    assert [job.id for job in store.jobs.claim("main", 10, "m1", now=2_000.0)] == [job_id]


def test_claim_takes_highest_priority_first_then_oldest(store: Store) -> None:
    low = store.jobs.insert(new(priority=0))
    high = store.jobs.insert(new(priority=5))
    low2 = store.jobs.insert(new(priority=0))
    claimed = store.jobs.claim("main", 2, "m1")
    assert [job.id for job in claimed] == [high, low]
    assert all(job.state is JobState.RUNNING and job.attempts == 1 and job.owner == "m1" for job in claimed)
    assert [job.id for job in store.jobs.claim("main", 5, "m1")] == [low2]


def test_claim_only_takes_the_named_daemons_jobs(store: Store) -> None:
    store.jobs.insert(new(daemon="sms"))
    assert store.jobs.claim("mailing", 5, "m1") == []
    assert len(store.jobs.claim("sms", 5, "m1")) == 1


def test_concurrent_claims_never_hand_out_a_job_twice(store: Store) -> None:
    store.jobs.insert_many([new() for _ in range(200)])
    claimed: list[int] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while True:
            jobs = store.jobs.claim("main", 7, owner)
            if not jobs:
                return
            with lock:
                claimed.extend(job.id for job in jobs)

    threads = [threading.Thread(target=claimer, args=(f"m{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(claimed) == 200
    assert len(set(claimed)) == 200


def test_success_is_recorded_only_by_the_owner_of_that_attempt(store: Store) -> None:
    job_id = store.jobs.insert(new())
    (job,) = store.jobs.claim("main", 1, "m1")
    assert not succeed(store, job_id, job.attempts, "someone-else", {"x": 1})
    assert not succeed(store, job_id, job.attempts + 1, "m1", {"x": 1})
    assert succeed(store, job_id, job.attempts, "m1", {"x": 1})
    done = store.jobs.get(job_id)
    assert done.state is JobState.SUCCEEDED and done.result == {"x": 1} and done.finished_at
    assert not succeed(store, job_id, job.attempts, "m1", {"x": 2}), "a finished job cannot finish twice"


def test_failure_retries_at_the_given_time_then_dies_with_its_traceback(store: Store) -> None:
    job_id = store.jobs.insert(new())
    (job,) = store.jobs.claim("main", 1, "m1", now=100.0)
    fail(store, job_id, job.attempts, "m1", error="boom", traceback="Traceback…", retry_at=160.0, now=100.0)
    retrying = store.jobs.get(job_id)
    assert retrying.state is JobState.RETRYING and retrying.run_at == 160.0
    assert store.jobs.claim("main", 1, "m1", now=150.0) == []
    (again,) = store.jobs.claim("main", 1, "m1", now=160.0)
    assert again.attempts == 2
    fail(store, job_id, again.attempts, "m1", error="boom again", traceback="Traceback 2", retry_at=None)
    dead = store.jobs.get(job_id)
    assert dead.state is JobState.DEAD and dead.error == "boom again" and dead.traceback == "Traceback 2"


def test_requeue_returns_running_jobs_and_keeps_the_checkpoint(store: Store) -> None:
    job_id = store.jobs.insert(new())
    (job,) = store.jobs.claim("main", 1, "m1")
    assert store.jobs.save_checkpoint(job_id, job.attempts, {"sent": 500})
    assert store.jobs.requeue([job_id], "m1", refund_attempt=True) == 1
    back = store.jobs.get(job_id)
    assert back.state is JobState.QUEUED and back.attempts == 0 and back.checkpoint == {"sent": 500}
    (again,) = store.jobs.claim("main", 1, "m2")
    assert again.checkpoint == {"sent": 500}


def test_checkpoint_of_a_stale_attempt_is_refused(store: Store) -> None:
    job_id = store.jobs.insert(new())
    (job,) = store.jobs.claim("main", 1, "m1")
    store.jobs.requeue_orphans()  # m1 is no live master
    store.jobs.claim("main", 1, "m2")
    assert not store.jobs.save_checkpoint(job_id, job.attempts, {"stale": True})


def test_unique_key_dedupes_while_unfinished_only(store: Store) -> None:
    first = store.jobs.insert(new(unique_key="report:2026-11-21"))
    assert store.jobs.insert(new(unique_key="report:2026-11-21")) == first
    (job,) = store.jobs.claim("main", 1, "m1")
    succeed(store, first, job.attempts, "m1", None)
    assert store.jobs.insert(new(unique_key="report:2026-11-21")) != first


def test_cancel_a_queued_job_at_once_and_flag_a_running_one(store: Store) -> None:
    waiting = store.jobs.insert(new())
    running = store.jobs.insert(new())
    store.jobs.claim("main", 1, "m1")  # takes `waiting` (older)
    store.jobs.insert(new())
    assert store.jobs.cancel(running).state is JobState.CANCELLED
    flagged = store.jobs.cancel(waiting)
    assert flagged.state is JobState.RUNNING and flagged.cancel_requested
    assert store.jobs.cancel_requests("m1") == [waiting]


def test_retry_requeues_dead_jobs_only(store: Store) -> None:
    job_id = store.jobs.insert(new())
    with pytest.raises(InvalidTransition):
        store.jobs.retry(job_id)
    (job,) = store.jobs.claim("main", 1, "m1")
    fail(store, job_id, job.attempts, "m1", error="x", traceback=None, retry_at=None)
    again = store.jobs.retry(job_id)
    assert again.state is JobState.QUEUED and again.attempts == 0


def test_unknown_job_is_a_clear_error(store: Store) -> None:
    with pytest.raises(UnknownJob, match="no job with id 999999"):
        store.jobs.get(999999)


def test_a_plain_sql_insert_from_another_language_is_a_valid_job(store: Store) -> None:
    """What a PHP app does (README: "Submitting from any language")."""
    with store.engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO jobd_jobs (daemon, task, args) VALUES (:daemon, :task, :args)"),
            {"daemon": "main", "task": "t.record", "args": '{"n": 7}'},
        )
    (job,) = store.jobs.claim("main", 1, "m1")
    assert job.args == {"n": 7} and job.created_at and job.args_problem is None


def test_a_row_with_broken_args_decodes_with_the_problem_named(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(
            sa.text("INSERT INTO jobd_jobs (daemon, task, args) VALUES ('main', 't.record', 'not json')")
        )
    (job,) = store.jobs.claim("main", 1, "m1")
    assert job.args == {} and "not valid JSON" in (job.args_problem or "")


def test_counts_by_daemon_and_state(store: Store) -> None:
    store.jobs.insert_many([new(), new(), new(daemon="sms")])
    store.jobs.claim("main", 1, "m1")
    assert store.jobs.counts() == {"main": {"queued": 1, "running": 1}, "sms": {"queued": 1}}


def test_masters_register_heartbeat_and_expire(store: Store) -> None:
    store.masters.register("other-host:1:x", pid=1, version="0", daemons=["main"], control_socket=None, now=1000.0)
    with store.engine.begin() as connection:  # pretend it runs on another host
        connection.execute(store.tables["masters"].update().values(host="elsewhere"))
    assert store.masters.dead_ids(lease=30, now=1010.0) == []
    assert store.masters.heartbeat("other-host:1:x", state="running", now=1020.0)
    assert store.masters.dead_ids(lease=30, now=1049.0) == []
    assert store.masters.dead_ids(lease=30, now=1051.0) == ["other-host:1:x"]


def test_jobs_of_a_dead_master_are_requeued_with_the_attempt_counted(store: Store) -> None:
    job_id = store.jobs.insert(new())
    store.jobs.claim("main", 1, "dead-master")
    assert store.jobs.requeue_orphans() == [job_id]
    job = store.jobs.get(job_id)
    assert job.state is JobState.QUEUED and job.attempts == 1 and job.owner is None


def test_pruning_deletes_only_old_finished_jobs_in_batches(store: Store) -> None:
    old_done = store.jobs.insert(new(), now=100.0)
    store.jobs.claim("main", 1, "m1", now=100.0)
    succeed(store, old_done, 1, "m1", None, now=100.0)
    still_queued = store.jobs.insert(new(), now=100.0)
    recent_ids = [store.jobs.insert(new(), now=1000.0) for _ in range(3)]
    for job in store.jobs.claim("main", 10, "m1", now=1000.0):
        if job.id in recent_ids:
            succeed(store, job.id, job.attempts, "m1", None, now=1000.0)
    assert store.jobs.prune_finished(older_than=500.0, batch=1) == [old_done]
    assert store.jobs.prune_finished(older_than=500.0, batch=1) == []
    remaining = {job.id for job in store.jobs.list(limit=100)}
    assert old_done not in remaining and still_queued in remaining and set(recent_ids) <= remaining


def test_a_lease_is_held_by_one_owner_until_it_expires(store: Store) -> None:
    assert store.leases.acquire("prune", "m1", ttl=60, now=1000.0)
    assert not store.leases.acquire("prune", "m2", ttl=60, now=1030.0)
    assert store.leases.acquire("prune", "m1", ttl=60, now=1030.0), "the holder renews"
    assert store.leases.acquire("prune", "m2", ttl=60, now=1100.0), "an expired lease can be taken"


def test_a_claimed_job_reads_exactly_as_the_store_has_it(store: Store) -> None:
    """The claim's rows come from the driver directly (store/cursor_sql.py): same types as any read."""
    job_id = store.jobs.insert(new(args={"n": 1, "name": "żółw"}, priority=3, max_attempts=4, run_at=1_000.0), now=1_000.0)
    (claimed,) = store.jobs.claim("main", 5, "m1", now=1_000.5)
    assert claimed == store.jobs.get(job_id)
    assert claimed.cancel_requested is False and claimed.run_at == 1_000.0 and claimed.started_at == 1_000.5


def test_a_failed_submit_or_claim_raises_the_stores_error_and_leaves_the_store_usable(store: Store) -> None:
    store.jobs.insert(new())
    store.engine.dispose()
    with store.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE jobd_jobs RENAME TO jobd_jobs_away"))
    try:
        with pytest.raises(sa.exc.DBAPIError):
            store.jobs.insert(new())  # the full submit: SQLAlchemy's error
        with pytest.raises(StoreFault) as claim_failed:
            store.jobs.claim("main", 5, "m1")  # driver SQL on a runner: jobd's, carrying the driver's
        assert "jobd_jobs" in str(claim_failed.value.orig) and is_store_error(claim_failed.value)
    finally:
        with store.engine.begin() as connection:
            connection.execute(sa.text("ALTER TABLE jobd_jobs_away RENAME TO jobd_jobs"))
    # No transaction was left open on a pooled connection: writers and claimers go on.
    job_id = store.jobs.insert(new())
    assert {job.id for job in store.jobs.claim("main", 5, "m1")} >= {job_id}


def test_a_unique_key_submit_in_its_own_transaction_and_in_the_callers_agree(store: Store) -> None:
    first = store.jobs.insert(new(unique_key="k"))
    with store.engine.begin() as connection:
        assert store.jobs.insert(new(unique_key="k"), connection=connection) == first
    assert store.jobs.insert(new(unique_key="k")) == first


def test_a_submitted_job_is_committed_when_insert_returns(store: Store, store_url: str) -> None:
    """MySQL submits through autocommit connections (no COMMIT round trip): still committed on return."""
    job_id = store.jobs.insert(new(unique_key="visible"))
    elsewhere = open_store(store_url)
    try:
        assert elsewhere.jobs.get(job_id).state is JobState.QUEUED
        assert elsewhere.jobs.insert(new(unique_key="visible")) == job_id
        assert [job.id for job in elsewhere.jobs.claim("main", 5, "m2")] == [job_id]
    finally:
        elsewhere.dispose()


# -- the connection held for submits and claims ----------------------------


def test_submits_from_many_threads_at_once_all_commit(store: Store) -> None:
    """One thread uses the held connection; the others take pooled ones meanwhile."""
    ids: list[int] = []
    errors: list[BaseException] = []

    def submit_some() -> None:
        try:
            for _ in range(20):
                ids.append(store.jobs.insert(new()))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=submit_some) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(set(ids)) == 120
    assert store.jobs.counts()["main"]["queued"] == 120


def test_a_lost_held_connection_fails_one_submit_then_is_replaced(mariadb_url: str) -> None:
    """Like a pooled connection without a ping: the submit that finds it dead fails, the next gets a new one."""
    store = open_store(mariadb_url)
    store.initialise()
    try:
        store.jobs.insert(new())
        held = direct._held[store.submit_engine]  # type: ignore[index]
        with store.engine.connect() as probe:
            probe.exec_driver_sql(f"KILL CONNECTION {held.take(store.submit_engine)[0].dbapi_connection.thread_id()}")
        with pytest.raises(sa.exc.DBAPIError) as raised:
            store.jobs.insert(new())
        assert raised.value.connection_invalidated
        assert store.jobs.insert(new()) > 0
        assert store.jobs.counts()["main"]["queued"] == 2
    finally:
        store.dispose()


def test_a_forked_child_submits_on_its_own_connection(store: Store) -> None:
    """A child never uses (or closes) the connection its parent holds; both go on submitting."""
    import os

    store.jobs.insert(new())
    pid = os.fork()
    if pid == 0:  # the child: exit status says whether its submit committed
        try:
            store.jobs.insert(new())
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.jobs.insert(new())
    assert store.jobs.counts()["main"]["queued"] == 3

# -- queries on state alone, across every daemon ---------------------------------------


def test_orphans_of_every_daemon_are_requeued_and_a_live_masters_jobs_stay(store: Store) -> None:
    store.masters.register("live", pid=1, version="0", daemons=["main"], control_socket=None)
    kept = store.jobs.insert(new(daemon="main"))
    orphans = [store.jobs.insert(new(daemon=daemon)) for daemon in ("alpha", "sms", "zeta")]
    store.jobs.claim("main", 5, "live")
    for daemon in ("alpha", "sms", "zeta"):
        store.jobs.claim(daemon, 5, "gone")
    assert sorted(store.jobs.requeue_orphans()) == orphans
    assert store.jobs.get(kept).state is JobState.RUNNING
    assert {store.jobs.get(job_id).state for job_id in orphans} == {JobState.QUEUED}


def test_due_stats_count_the_due_jobs_of_every_daemon(store: Store) -> None:
    store.jobs.insert(new(daemon="alpha"), now=100.0)
    store.jobs.insert(new(daemon="zeta", run_at=150.0), now=100.0)  # scheduled, due by 200
    store.jobs.insert(new(daemon="zeta", run_at=500.0), now=100.0)  # not due yet
    store.jobs.insert(new(daemon="sms"), now=100.0)
    store.jobs.claim("sms", 5, "m1", now=100.0)  # running: not waiting
    assert store.jobs.due_stats(now=200.0) == {"alpha": (1, 100.0), "zeta": (1, 150.0)}


def test_listing_by_state_finds_the_jobs_of_every_daemon(store: Store) -> None:
    ids = {daemon: store.jobs.insert(new(daemon=daemon)) for daemon in ("alpha", "main", "zeta")}
    store.jobs.cancel(ids["alpha"])
    store.jobs.cancel(ids["zeta"])
    assert [job.id for job in store.jobs.list(states=[JobState.CANCELLED])] == [ids["zeta"], ids["alpha"]]
    assert [job.id for job in store.jobs.list(states=[JobState.CANCELLED], daemon="zeta")] == [ids["zeta"]]
    assert [job.id for job in store.jobs.list(states=[JobState.QUEUED, JobState.RUNNING])] == [ids["main"]]


# -- SQLite: the queries that need an index keep it ------------------------------------


def _sqlite_plans(store: Store, operation: Callable[[], object]) -> list[str]:
    """Run ``operation``; return SQLite's query plan of each statement it ran on the jobs table."""
    statements: list[str] = []

    def listener(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    sa.event.listen(store.engine, "connect", listener)
    direct.release_held(store.engine)
    store.engine.dispose()  # new connections, traced (the trace shows the SQL with its values in place)
    try:
        operation()
    finally:
        sa.event.remove(store.engine, "connect", listener)
        direct.release_held(store.engine)
        store.engine.dispose()
    plans = []
    with store.engine.connect() as connection:
        for sql in statements:
            if "jobd_jobs" in sql and sql.lstrip().split(None, 1)[0].upper() in {"SELECT", "UPDATE", "DELETE", "WITH"}:
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
                plans.append(" | ".join(row[3] for row in rows))
    return plans


@pytest.mark.parametrize(
    ("operation", "indexes"),
    [
        pytest.param(
            lambda store, running_job: store.jobs.claim("main", 5, "m1", now=2_000.0),
            ["jobd_jobs_waiting (state=? AND run_at<?)", "jobd_jobs_waiting (state=? AND run_at<?)",
             "jobd_jobs_undated (state=?)", "jobd_jobs_ready (daemon=? AND state=? AND priority>?)"],
            id="claim-with-promotion-of-due-scheduled-and-retrying-jobs",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.requeue([running_job], "m1", refund_attempt=True, now=2_000.0),
            ["INTEGER PRIMARY KEY (rowid=?)"],
            id="return-jobs-to-the-queue",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.requeue_orphans(now=2_000.0),
            ["jobd_jobs_ready (daemon=? AND state=?)", "INTEGER PRIMARY KEY (rowid=?)"],
            id="requeue-orphans",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.cancel_requests("m1"),
            ["jobd_jobs_owner (owner=? AND state=?)"],
            id="cancel-requests",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.prune_finished(older_than=2_000.0),
            ["jobd_jobs_state_finished (state=? AND finished_at<?)", "INTEGER PRIMARY KEY (rowid=?)"],
            id="prune-finished-jobs",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.due_stats(now=2_000.0),
            ["jobd_jobs_ready (daemon=? AND state=?)"],
            id="due-stats",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.list(states=[JobState.DEAD, JobState.CANCELLED]),
            ["jobd_jobs_ready (daemon=? AND state=?)"],
            id="list-by-state",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.owned_running("m1", started_before=2_000.0),
            ["jobd_jobs_owner (owner=? AND state=?)"],
            id="hand-offs-to-adopt",
        ),
        pytest.param(
            lambda store, running_job: store.jobs.handed([running_job], "m1"),
            ["INTEGER PRIMARY KEY (rowid=?)"],
            id="hand-off-read",
        ),
        pytest.param(
            lambda store, running_job: succeed(store, running_job, 1, "m1", None, now=2_000.0),
            ["INTEGER PRIMARY KEY (rowid=?)"],
            id="finish",
        ),
    ],
)
def test_sqlite_queries_search_their_index_instead_of_scanning_the_jobs(
    tmp_path: Path, operation: Callable[[Store, int], object], indexes: list[str]
) -> None:
    """EXPLAIN QUERY PLAN of what each operation runs: SQLite uses a partial index only when
    the query's WHERE implies the index's, so a changed query could silently become a full scan."""
    store = open_store(f"sqlite:///{tmp_path / 'jobd.db'}")
    store.initialise()
    # A job of every kind the indexes hold: scheduled, retrying, running (owned), finished.
    store.jobs.insert(new(run_at=1_500.0), now=1_000.0)
    running = [store.jobs.insert(new(), now=1_000.0) for _ in range(3)]
    store.jobs.claim("main", 3, "m1", now=1_000.0)
    fail(store, running[0], 1, "m1", error="boom", traceback=None, retry_at=1_500.0, now=1_000.0)
    succeed(store, running[1], 1, "m1", None, now=1_000.0)
    try:
        plans = _sqlite_plans(store, lambda: operation(store, running[2]))
    finally:
        store.dispose()
    assert len(plans) == len(indexes), plans
    for plan, index in zip(plans, indexes):
        assert index in plan, plan
        assert "SCAN jobd_jobs" not in plan, plan


def test_forked_children_never_share_the_parents_pooled_connections(store: Store) -> None:
    """A process that used the store and then forks (a preloading app server) gives each child its own connections."""
    job_id = store.jobs.insert(NewJob("main", "t.record", {}))
    assert store.jobs.get(job_id).id == job_id  # the parent now has a connection idle in its pool
    children = []
    for _ in range(4):
        pid = os.fork()
        if pid == 0:
            try:
                for _ in range(50):
                    store.jobs.get(job_id)
                    store.jobs.insert(NewJob("main", "t.record", {}))
                os._exit(0)
            except BaseException:  # noqa: BLE001
                os._exit(1)
        children.append(pid)
    deadline, codes = time.monotonic() + 60, {}
    while len(codes) < len(children) and time.monotonic() < deadline:
        for pid in children:
            if pid not in codes and (ended := os.waitpid(pid, os.WNOHANG))[0]:
                codes[pid] = os.waitstatus_to_exitcode(ended[1])
        time.sleep(0.02)
    for pid in set(children) - set(codes):
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert list(codes.values()) == [0] * len(children), f"children hung or failed: {codes}"
    assert store.jobs.get(job_id).id == job_id  # the parent's own connection still works


def test_on_mysql_the_schema_lock_is_released_only_after_the_initialising_transaction_commits(mariadb_url: str) -> None:
    """Released before the commit, a master starting beside this one could read no version yet and insert it twice."""
    store = open_store(mariadb_url)
    seen: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, statement, *_rest: seen.append(statement))
    sa.event.listen(store.engine, "commit", lambda _connection: seen.append("COMMIT"))
    try:
        store.initialise()
    finally:
        store.dispose()
    inserted = next(index for index, statement in enumerate(seen) if statement.startswith("INSERT INTO jobd_meta"))
    committed = seen.index("COMMIT", inserted)
    released = next(index for index, statement in enumerate(seen) if "RELEASE_LOCK" in statement)
    assert inserted < committed < released
