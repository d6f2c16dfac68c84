"""A write the store refuses for one job's data fails that job; only an outage is retried.

Real stores, real errors: MariaDB refusing a 100 KB error (``Data too long``),
a lock wait timing out, a connection refused through the fault proxy;
SQLite refusing a string over its length limit, a database locked by
another connection; and a lone surrogate no driver can encode.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from jobd.outcome_writer import REFUSED_PREFIX, EndingWriter, write_outcomes
from jobd.outcomes import Ending, EndingKind, Limits
from jobd.output_caps import OutputCaps
from jobd.states import JobState
from jobd.store import NewJob, Store, open_store
from jobd.store.errors import StoreFault, describe, is_outage
from jobd.store.jobs import Outcome

from .tcp_proxy import TcpProxy

OWNER = "master-under-test"


def _claimed(store: Store, count: int) -> list[int]:
    for n in range(count):
        store.jobs.insert(NewJob("main", "t.noop", {"n": n}))
    return [job.id for job in store.jobs.claim("main", count, OWNER)]


def _update_error(engine: sa.Engine, table: sa.Table, job_id: int, error: str) -> None:
    with engine.begin() as connection:
        connection.execute(table.update().where(table.c.id == job_id).values(error=error))


@pytest.mark.mysql
def test_mariadb_refusing_a_value_is_a_data_error_and_a_lock_timeout_or_refused_connection_an_outage(mariadb_url: str) -> None:
    store = open_store(mariadb_url)
    store.initialise()
    try:
        (job_id,) = _claimed(store, 1)
        jobs = store.tables["jobs"]
        with pytest.raises(sa.exc.DBAPIError) as refused:
            _update_error(store.engine, jobs, job_id, "E" * 100_000)
        assert not is_outage(refused.value)
        assert describe(refused.value) == "(1406, \"Data too long for column 'error' at row 1\")"
        with pytest.raises(UnicodeEncodeError) as unencodable:
            _update_error(store.engine, jobs, job_id, "report-\udcff.csv")
        assert not is_outage(unencodable.value)

        database = mariadb_url.rsplit("/", 1)[1]
        holder = pymysql.connect(host="127.0.0.1", user="root", database=database)
        waiter = pymysql.connect(host="127.0.0.1", user="root", database=database)
        try:
            holder.begin()
            holder.cursor().execute("SELECT id FROM jobd_jobs WHERE id = %s FOR UPDATE", (job_id,))
            waiter.cursor().execute("SET SESSION innodb_lock_wait_timeout = 1")
            with pytest.raises(pymysql.err.OperationalError) as timed_out:
                waiter.cursor().execute("UPDATE jobd_jobs SET error = 'x' WHERE id = %s", (job_id,))
            assert timed_out.value.args[0] == 1205 and is_outage(timed_out.value)
        finally:
            holder.rollback()
            holder.close()
            waiter.close()
    finally:
        store.dispose()

    with TcpProxy() as proxy:
        through_proxy = open_store(proxy.url(database))
        try:
            proxy.refuse()
            with pytest.raises(StoreFault) as unreachable:
                through_proxy.jobs.apply_outcomes(OWNER, [Outcome(job_id, 1, JobState.SUCCEEDED, {"result": "1"})])
            assert is_outage(unreachable.value)
        finally:
            through_proxy.dispose()


def test_sqlite_refusing_a_value_is_a_data_error_and_a_locked_database_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    connection = sqlite3.connect(path, timeout=0.1)
    connection.execute("CREATE TABLE t (x TEXT)")
    connection.commit()
    with pytest.raises(UnicodeEncodeError) as unencodable:
        connection.execute("INSERT INTO t VALUES (?)", ("\udcff",))
    assert not is_outage(unencodable.value)
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, 1000)
    with pytest.raises(sqlite3.DataError) as too_big:
        connection.execute("INSERT INTO t VALUES (?)", ("x" * 5000,))
    assert not is_outage(too_big.value)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as locked:
            connection.execute("INSERT INTO t VALUES ('y')")
        assert is_outage(locked.value)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        connection.close()


def test_a_batch_the_store_refuses_for_one_job_writes_the_others_and_that_job_dies_with_the_store_reason(store: Store) -> None:
    ids = _claimed(store, 5)
    huge, unencodable, *fine = ids
    now = time.time()
    outcomes = [
        Outcome(huge, 1, JobState.DEAD, {"error": "E" * 100_000, "traceback": None, "run_at": None}),
        Outcome(unencodable, 1, JobState.DEAD, {"error": "cannot open report-\udcff.csv", "traceback": None, "run_at": None}),
        *(Outcome(job_id, 1, JobState.SUCCEEDED, {"result": "1"}) for job_id in fine),
    ]
    written = write_outcomes(store.jobs, OWNER, outcomes, now)

    assert [outcome.job_id for outcome in written] == ids
    assert all(store.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in fine)
    refused = store.jobs.get(unencodable)
    assert refused.state is JobState.DEAD
    assert refused.error is not None and refused.error.startswith(REFUSED_PREFIX + "UnicodeEncodeError: ")
    long_error = store.jobs.get(huge)
    assert long_error.state is JobState.DEAD
    if store.engine.dialect.name == "mysql":
        assert long_error.error == REFUSED_PREFIX + "(1406, \"Data too long for column 'error' at row 1\")"
    else:
        assert long_error.error == "E" * 100_000  # SQLite takes it: only what a store refuses is replaced
    assert written[1].values["error"] == refused.error


def test_a_refused_outcome_is_written_once_and_rewriting_a_written_burst_changes_nothing(store: Store) -> None:
    (job_id,) = _claimed(store, 1)
    outcome = Outcome(job_id, 1, JobState.RETRYING, {"error": "bad \udcff", "traceback": "tb \udcff", "run_at": time.time() + 60})
    first = write_outcomes(store.jobs, OWNER, [outcome], time.time())
    again = write_outcomes(store.jobs, OWNER, [outcome], time.time())  # as after an outage mid-burst
    assert first[0].state is JobState.DEAD and store.jobs.get(job_id).state is JobState.DEAD
    assert again[0].state is JobState.DEAD and store.jobs.get(job_id).attempts == 1


def test_a_crash_whose_error_the_store_refuses_kills_the_job_with_the_store_reason_instead(store: Store) -> None:
    (job_id,) = _claimed(store, 1)
    uncapped = Limits(timeout=60, max_attempts=3, backoff_base=1, backoff_max=1, caps=OutputCaps(error_bytes=1_000_000))
    writer = EndingWriter(store.jobs, OWNER)

    (written,) = writer.write([(store.jobs.get(job_id), Ending(EndingKind.CRASHED, error="E" * 100_000), uncapped)])

    job = store.jobs.get(job_id)
    assert job.error == written.values["error"]
    if store.engine.dialect.name == "mysql":
        assert written.state is JobState.DEAD, "retrying with the same refused text would fail forever"
        assert job.state is JobState.DEAD and job.error.startswith(REFUSED_PREFIX)
    else:
        assert job.state is JobState.RETRYING and job.error == "E" * 100_000  # SQLite takes it: only a refusal is replaced
