"""jobd.submit_many: many jobs of one task, all written or none, ids in order, duplicates reported.

Every test runs on SQLite and on MariaDB.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

import jobd
from jobd.bulk import Duplicate
from jobd.errors import InvalidArgs, UnknownTask
from jobd.states import JobState
from jobd.store.bulk_sql import MAX_ROWS_PER_STATEMENT, chunks, row_bytes
from support import Deployment


def prepared(made: Deployment, *, catalogue: bool = False) -> Deployment:
    """A store with tables; with ``catalogue``, the daemon's tasks published as a master publishes them at start."""
    made.write_config({"main": {"workers": 2}})
    made.store.initialise()
    if catalogue:
        made.jobd("check", check=True)
    return made


@pytest.fixture(params=["catalogue published", "no catalogue yet"])
def deployment(request: pytest.FixtureRequest, deployment_factory: Callable[[str | None], Deployment], store_url: str) -> Deployment:
    """Every test runs both ways: an application's bulk goes through the database driver alone
    (``jobd.ops.quick_submit``), checked against the published catalogue, or, before one is, against the
    task code imported to check. (The full path, with a caller's connection or the config's models given:
    the tests below that pass ``connection``, and ``tests/test_submit_through_driver.py``.)"""
    return prepared(deployment_factory(store_url), catalogue=request.param == "catalogue published")


@pytest.fixture
def sqlite_deployment(deployment_factory: Callable[[str | None], Deployment]) -> Deployment:
    return prepared(deployment_factory(None))


@pytest.fixture
def mariadb_deployment(deployment_factory: Callable[[str | None], Deployment], mariadb_url: str) -> Deployment:
    return prepared(deployment_factory(mariadb_url))


def stored(deployment: Deployment) -> list[tuple[int, dict[str, Any], str | None, str]]:
    """(id, args, unique key, state) of every job in the store, by id."""
    jobs = deployment.store.tables["jobs"]
    with deployment.store.engine.connect() as connection:
        rows = connection.execute(sa.select(jobs.c.id, jobs.c.args, jobs.c.unique_key, jobs.c.state).order_by(jobs.c.id)).all()
    return [(row.id, json.loads(row.args), row.unique_key, row.state) for row in rows]


def test_ids_come_back_in_the_items_order_across_many_statements(deployment: Deployment) -> None:
    count = 2 * MAX_ROWS_PER_STATEMENT + 123  # more rows than one statement takes
    result = jobd.submit_many("main", "t.record", [{"n": n} for n in range(count)], config=deployment.config_path)
    assert result.duplicates == [] and result.submitted == count
    rows = stored(deployment)
    assert [row[0] for row in rows] == result.ids
    assert [row[1] for row in rows] == [{"n": n} for n in range(count)]
    assert {row[3] for row in rows} == {"queued"}


def test_priority_run_at_and_max_attempts_apply_to_every_job(deployment: Deployment) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    result = jobd.submit_many(
        "main", "t.record", [{"n": 1}, {"n": 2}], priority=7, run_at=later, max_attempts=2, config=deployment.config_path,
    )
    for job_id in result.ids:
        job = deployment.store.jobs.get(job_id)
        assert (job.state, job.priority, job.max_attempts) == (JobState.SCHEDULED, 7, 2)
        assert job.run_at == pytest.approx(later.timestamp())


def test_sqlite_statements_stay_under_the_connections_variable_limit(sqlite_deployment: Deployment) -> None:
    deployment = sqlite_deployment
    with deployment.store.engine.begin() as connection:
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 40)  # 29 rows of args with their unique key
        try:
            result = jobd.submit_many(
                "main", "t.record", [{"n": n} for n in range(500)], unique_keys=[f"k{n}" for n in range(500)],
                connection=connection, config=deployment.config_path,
            )
        finally:
            raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    assert [row[0] for row in stored(deployment)] == result.ids
    assert [row[2] for row in stored(deployment)] == [f"k{n}" for n in range(500)]


def test_mariadb_statements_stay_under_max_allowed_packet(mariadb_deployment: Deployment) -> None:
    deployment = mariadb_deployment
    with deployment.store.engine.connect() as connection:
        packet = int(connection.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
    size = 512 * 1024  # args near the per-job cap: far fewer rows than MAX_ROWS_PER_STATEMENT fill a packet
    count = packet // size + 8
    markers = [f"{n}:" + "é" * (size // 2) for n in range(count)]  # 2 bytes a character in UTF-8
    result = jobd.submit_many("main", "t.chatty_fail", [{"marker": marker} for marker in markers], config=deployment.config_path)
    assert [row[0] for row in stored(deployment)] == result.ids
    assert [row[1]["marker"] for row in stored(deployment)] == markers


def test_in_the_callers_transaction_a_rollback_leaves_nothing_and_a_commit_keeps_all(deployment: Deployment) -> None:
    engine = deployment.store.engine
    with pytest.raises(RuntimeError, match="the caller changed its mind"):
        with engine.begin() as connection:
            jobd.submit_many("main", "t.record", [{"n": n} for n in range(3000)], connection=connection, config=deployment.config_path)
            raise RuntimeError("the caller changed its mind")
    assert stored(deployment) == []
    with engine.begin() as connection:
        result = jobd.submit_many("main", "t.record", [{"n": n} for n in range(3)], connection=connection, config=deployment.config_path)
    assert [row[0] for row in stored(deployment)] == result.ids


def test_duplicate_unique_keys_are_reported_not_raised(deployment: Deployment) -> None:
    held = jobd.submit("main", "t.record", {"n": 0}, unique_key="contact-1", config=deployment.config_path)
    result = jobd.submit_many(
        "main", "t.record", [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}],
        unique_keys=["contact-1", "contact-2", None, "contact-2"], config=deployment.config_path,
    )
    second = result.ids[1]
    assert result.duplicates == [Duplicate(0, "contact-1", held), Duplicate(3, "contact-2", second)]
    assert result.ids == [held, second, result.ids[2], second]
    assert result.new_ids == [second, result.ids[2]] and result.submitted == 2
    assert [(row[1], row[2]) for row in stored(deployment)] == [({"n": 0}, "contact-1"), ({"n": 2}, "contact-2"), ({"n": 3}, None)]


def test_a_key_taken_by_a_concurrent_submit_after_the_look_up_is_reported_as_a_duplicate(deployment: Deployment) -> None:
    """The other submit's transaction holds the key uncommitted while the bulk runs; it commits, the bulk retries."""
    engine = sa.create_engine(deployment.store_url) if deployment.store_url.startswith("mysql") else deployment.store.engine
    outcome: dict[str, Any] = {}
    other = engine.connect()
    transaction = other.begin()
    if deployment.store_url.startswith("sqlite"):
        other.exec_driver_sql("SELECT 1")  # the store's BEGIN IMMEDIATE: the bulk waits for this writer
    held = jobd.submit("main", "t.record", {"n": 0}, unique_key="k-race", connection=other, config=deployment.config_path)

    def bulk() -> None:
        outcome["result"] = jobd.submit_many(
            "main", "t.record", [{"n": 1}, {"n": 2}], unique_keys=["k-race", "k-free"], config=deployment.config_path,
        )

    thread = threading.Thread(target=bulk)
    thread.start()
    thread.join(timeout=0.5)  # the bulk is now blocked on the other transaction's key (or write lock)
    transaction.commit()
    other.close()
    thread.join(timeout=30)
    result = outcome["result"]
    assert result.duplicates == [Duplicate(0, "k-race", held)]
    assert [(row[1], row[2]) for row in stored(deployment)] == [({"n": 0}, "k-race"), ({"n": 2}, "k-free")]
    if engine is not deployment.store.engine:
        engine.dispose()


@pytest.mark.parametrize(
    ("items", "keys", "message"),
    [
        ([{"n": 1}, {"n": 2}, {"nope": 3}], None, r"item 2: task 't.record' does not accept these args"),
        ([{"n": 1}, [1, 2]], None, r"item 1: args must be a JSON object"),
        ([{"n": 1}, {"n": dt.datetime.now()}], None, r"item 1: args are not JSON-serialisable"),
        ([{"n": float("nan")}], None, r"item 0: args hold NaN"),
        ([{"n": 1}, {"n": 2}], ["a"], r"unique_keys has 1 entries for 2 items"),
        ([{"n": 1}, {"n": 2}], ["a", ""], r"item 1: unique key '' must be a non-empty string"),
        ([{"n": 1}, {"n": 2}], "ab", r"one key \(or None\) per item"),
    ],
)
def test_a_bad_item_names_its_index_and_nothing_is_inserted(deployment: Deployment, items: list[Any], keys: Any, message: str) -> None:
    with pytest.raises(InvalidArgs, match=message):
        jobd.submit_many("main", "t.record", items, unique_keys=keys, config=deployment.config_path)
    assert stored(deployment) == []


def test_an_unknown_task_or_an_empty_list(deployment: Deployment) -> None:
    with pytest.raises(UnknownTask, match="has no task 'no.such'"):
        jobd.submit_many("main", "no.such", [{}], config=deployment.config_path)
    assert jobd.submit_many("main", "t.record", [], config=deployment.config_path).ids == []
    assert stored(deployment) == []


def test_jobs_submitted_in_bulk_run_under_a_real_master(deployment: Deployment) -> None:
    deployment.start_master()
    result = jobd.submit_many("main", "t.record", [{"n": n} for n in range(300)], config=deployment.config_path)
    deployment.wait_all_final(result.ids)
    assert {deployment.store.jobs.get(job_id).state for job_id in result.ids} == {JobState.SUCCEEDED}
    assert sorted(map(int, deployment.lines("runs.log"))) == result.ids


def test_chunks_respect_the_row_and_byte_limits() -> None:
    rows = [("x" * size,) for size in (10, 10, 10, 100, 10, 1000, 10)]
    assert list(chunks(rows, 3, None)) == [(0, 3), (3, 6), (6, 7)]
    limit = row_bytes(rows[0]) * 3
    ranges = list(chunks(rows, 100, limit))
    assert ranges[0] == (0, 3) and ranges[-1][1] == len(rows)
    for start, end in ranges:  # every chunk fits, unless it is a single row too large for any
        assert sum(map(row_bytes, rows[start:end])) <= limit or end - start == 1
    assert [end - start for start, end in ranges] == [3, 1, 1, 1, 1]
