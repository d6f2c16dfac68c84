"""The registry tables' writes are driver SQL: the store runs them through SQLAlchemy, and a bare driver
connection runs the very same text with the same outcome (``jobd/store/registry_sql.py``,
``jobd/store/job_log_writes_sql.py``) — the way to a master that loads no SQLAlchemy.

Each scenario runs twice on a fresh store, SQLite and MariaDB: once through
the store's own methods, once on a DB-API connection opened with the
arguments a worker gets, and both must leave the same rows.
"""

from __future__ import annotations

import importlib
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from jobd.daemons.plan import Desired
from jobd.store import Store, open_store
from jobd.store.catalogue_row import CatalogueRow
from jobd.store.driver_reads import statements_on_driver
from jobd.store.driver_sql import open_connection
from jobd.store.engine import driver_target, statements_on
from jobd.store.job_log_reads_sql import JobLogLine
from jobd.store.job_log_writes_sql import JobLogWrites
from jobd.store.registry_sql import CatalogueWrites, DesiredStateWrites, LeaseWrites, MasterWrites
from jobd.store.sql_statements import Statements

HOST = socket.gethostname()


@contextmanager
def bare_driver(url: str) -> Iterator[Statements]:
    """Statements on a DB-API connection opened as a worker's is: no SQLAlchemy in the way, each statement committed."""
    target = driver_target(url)
    connection = open_connection(target, importlib.import_module(target.driver_module))
    try:
        yield statements_on_driver(connection, target.dialect)
    finally:
        connection.close()


@contextmanager
def through_the_engine(store: Store) -> Iterator[Statements]:
    with store.engine.begin() as connection:
        yield statements_on(connection)


def registry_story(sql: Statements) -> list[Any]:
    """Masters, a lease, desired states, the catalogue and log lines, written the way a master writes them."""
    masters, leases, desired, catalogue, logs = MasterWrites(sql), LeaseWrites(sql), DesiredStateWrites(sql), CatalogueWrites(sql), JobLogWrites(sql)
    masters.register("a", host="elsewhere", pid=1, version="0", daemons=["main"], control_socket=None, now=1000.0)
    masters.register("b", host="elsewhere", pid=2, version="0", daemons=["sms"], control_socket="/tmp/b.sock", now=1000.0)
    said = [
        masters.heartbeat("a", state="draining", daemons=["main", "sms"], now=1020.0),
        masters.declare_dead("a", beat_before=1010.0, now=1030.0),  # it beat at 1020: not dead
        masters.declare_dead("b", beat_before=1010.0, now=1030.0),
        masters.heartbeat("b", state="running", daemons=None, now=1031.0),  # declared dead: its heartbeat fails
        masters.declare_dead("b", beat_before=None, now=1032.0),  # already dead
    ]
    masters.mark_stopped("a", now=1040.0)
    said.append(masters.prune(older_than=1035.0))  # b ended at 1030, a at 1040
    said += [
        leases.acquire("prune", "m1", ttl=60, now=1000.0),
        leases.acquire("prune", "m2", ttl=60, now=1030.0),
        leases.acquire("prune", "m1", ttl=60, now=1030.0),
        leases.acquire("prune", "m2", ttl=60, now=1100.0),
    ]
    desired.save(HOST, "main", running=False, workers=None, now=1.0)
    desired.save(HOST, "main", running=True, workers=4, now=2.0)
    desired.save(HOST, "sms", running=False, workers=2, now=3.0)
    said.append(catalogue.publish([CatalogueRow("main", "v1", '{"tasks": {}}', 5.0), CatalogueRow("sms", "v1", '{"tasks": {}}', 5.0)]))
    said.append(catalogue.publish([CatalogueRow("main", "v1", '{"tasks": {}}', 6.0), CatalogueRow("sms", "v2", '{"tasks": {"s": {}}}', 6.0)]))
    logs.append([JobLogLine(n, 1, 10.0 + n, "INFO", "t", 99, f"line {n} żółw") for n in range(1, 4)])
    said.append(logs.delete_for([1, 2, 7]))
    return said


def stored(store: Store) -> dict[str, Any]:
    """What the store holds afterwards, as its own reads see it."""
    with store.engine.connect() as connection:
        leases = [tuple(row) for row in connection.exec_driver_sql("SELECT name, owner, expires_at FROM jobd_locks")]
    return {
        "masters": [(m.id, m.state, m.daemons, m.heartbeat_at, m.stopped_at) for m in store.masters.all()],
        "leases": leases,
        "desired": store.daemon_states.load(HOST),
        "catalogue": sorted(store.task_catalogue.read(), key=lambda row: row.daemon),
        "logs": [(line.job_id, line.message) for line in store.job_logs.lines()],
    }


@pytest.fixture
def fresh_store(store_url: str) -> Iterator[Callable[[], Store]]:
    """A store emptied of the registry tables' rows before each use."""
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(store_url)
        store.initialise()
        with store.engine.begin() as connection:
            for table in ("masters", "locks", "daemon_states", "task_catalogue", "job_logs"):
                connection.exec_driver_sql(f"DELETE FROM jobd_{table}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.dispose()


def test_a_bare_driver_connection_writes_the_registry_as_the_store_does(fresh_store: Callable[[], Store]) -> None:
    store = fresh_store()
    with through_the_engine(store) as sql:
        said_by_engine = registry_story(sql)
    by_engine = stored(store)

    store = fresh_store()
    with bare_driver(store.engine.url.render_as_string(hide_password=False)) as sql:
        said_by_driver = registry_story(sql)
    by_driver = stored(store)

    assert said_by_driver == said_by_engine
    assert by_driver == by_engine
    # And the story did what it says, so two empty runs cannot pass.
    assert said_by_engine == [True, False, True, False, False, 1, True, False, True, True, ["main", "sms"], ["sms"], 2]
    assert by_engine["masters"] == [("a", "stopped", ["main", "sms"], 1020.0, 1040.0)]
    assert by_engine["leases"] == [("prune", "m2", 1160.0)]
    assert by_engine["desired"] == {"main": Desired(running=True, workers=4), "sms": Desired(running=False, workers=2)}
    assert [(row.daemon, row.version) for row in by_engine["catalogue"]] == [("main", "v1"), ("sms", "v2")]
    assert by_engine["logs"] == [(3, "line 3 żółw")]


def first_update_misses(sql: Statements) -> Statements:
    """``sql``, except that its first UPDATE changes nothing: as if it ran before another writer inserted the row."""
    missed: list[str] = []

    def run(text: str, values: tuple[Any, ...]) -> int:
        if text.startswith("UPDATE") and not missed:
            missed.append(text)
            return 0
        return sql.run(text, values)

    return Statements(sql.dialect, sql.rows, run, sql.insert, sql.run_many)


def test_a_writer_that_finds_no_row_and_then_a_duplicate_key_updates_the_other_writers_row(fresh_store: Callable[[], Store]) -> None:
    store = fresh_store()
    with bare_driver(store.engine.url.render_as_string(hide_password=False)) as sql:
        DesiredStateWrites(sql).save(HOST, "main", running=False, workers=None, now=1.0)
        DesiredStateWrites(first_update_misses(sql)).save(HOST, "main", running=True, workers=3, now=2.0)
        CatalogueWrites(sql).publish([CatalogueRow("main", "v1", "{}", 1.0)])
        assert CatalogueWrites(first_update_misses(sql)).publish([CatalogueRow("main", "v2", "{}", 2.0)]) == ["main"]
        assert LeaseWrites(sql).acquire("prune", "m1", ttl=60, now=1000.0)
        assert not LeaseWrites(first_update_misses(sql)).acquire("prune", "m2", ttl=60, now=1000.0), "the lease is m1's"
    assert store.daemon_states.load(HOST) == {"main": Desired(running=True, workers=3)}
    assert [(row.daemon, row.version) for row in store.task_catalogue.read()] == [("main", "v2")]
