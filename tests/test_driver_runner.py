"""The master's way to its store: driver SQL on connections of its own, one per thread, no SQLAlchemy.

``DriverRunner`` stands in for the engine and its pool in the master, so it
must do what they did where it matters: a transaction commits or rolls back
as a whole; threads that come and go reuse the pool's connections; SQLite's
write lock is waited for, then given up on; a
connection an outage broke is replaced, one that only refused a value is
kept; a forked child never uses its parent's connection; a MySQL connection
is opened again before the server's idle timeout could close it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from jobd.store import open_store
from jobd.store.driver_runner import DriverRunner
from jobd.store.driver_sql import DriverTarget, for_master
from jobd.store.engine import driver_target, shown_url
from jobd.store.errors import StoreFault, is_outage
from faults.tcp_proxy import TcpProxy

META = "jobd_meta"


def runner_for(url: str) -> DriverRunner:
    return DriverRunner(for_master(driver_target(url)), shown_url(url))


def initialise(url: str) -> str:
    """Create the store's schema, as `jobd start` does before the master opens it; ``url``."""
    store = open_store(url)
    store.initialise()
    store.dispose()
    return url


@pytest.fixture
def runner(store_url: str) -> Iterator[DriverRunner]:
    opened = runner_for(initialise(store_url))
    yield opened
    opened.dispose()


@pytest.fixture
def mariadb_runner(mariadb_url: str) -> Iterator[DriverRunner]:
    opened = runner_for(initialise(mariadb_url))
    yield opened
    opened.dispose()


def values(runner: DriverRunner, key_prefix: str) -> dict[str, str]:
    with runner.read() as sql:
        rows = sql.rows(f"SELECT `key`, value FROM {META} WHERE `key` LIKE {sql.mark}", (f"{key_prefix}%",))
    return {str(row["key"]): str(row["value"]) for row in rows}


def put(runner: DriverRunner, key: str, value: str) -> None:
    with runner.write() as sql:
        sql.run(f"INSERT INTO {META} (`key`, value) VALUES ({sql.marks(2)})", (key, value))


def connection_id(runner: DriverRunner) -> int:
    with runner.read() as sql:
        return int(sql.rows("SELECT CONNECTION_ID() AS id", ())[0]["id"])


def test_a_write_commits_as_a_whole_or_not_at_all(runner: DriverRunner) -> None:
    put(runner, "t.kept", "1")
    with pytest.raises(RuntimeError):
        with runner.write() as sql:
            sql.run(f"INSERT INTO {META} (`key`, value) VALUES ({sql.marks(2)})", ("t.undone", "1"))
            raise RuntimeError("the caller gave up half-way")
    assert values(runner, "t.") == {"t.kept": "1"}
    put(runner, "t.after", "2")  # the connection took no open transaction along
    assert values(runner, "t.") == {"t.kept": "1", "t.after": "2"}


def test_each_thread_writes_on_a_connection_of_its_own(runner: DriverRunner) -> None:
    errors: list[BaseException] = []

    def write_some(index: int) -> None:
        try:
            for n in range(20):
                put(runner, f"t.{index}.{n}", str(n))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write_some, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(values(runner, "t.")) == 80


@pytest.mark.mysql
def test_threads_that_come_and_go_reuse_the_pools_connections(mariadb_runner: DriverRunner) -> None:
    seen: list[int] = []
    for _ in range(20):  # as the master counts jobs: a thread of its own each time
        thread = threading.Thread(target=lambda: seen.append(connection_id(mariadb_runner)))
        thread.start()
        thread.join(timeout=30)
    assert len(seen) == 20 and len(set(seen)) == 1, "one connection served them all, none was left behind"


def test_a_refused_value_fails_its_transaction_only_and_keeps_the_connection(runner: DriverRunner) -> None:
    put(runner, "t.one", "1")
    with pytest.raises(StoreFault) as refused:
        put(runner, "t.one", "again")  # the primary key refuses it
    assert not is_outage(refused.value) and not refused.value.connection_invalidated
    put(runner, "t.two", "2")
    assert values(runner, "t.") == {"t.one": "1", "t.two": "2"}


def test_a_sqlite_writer_waits_for_the_lock_in_short_polls_and_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    url = initialise(f"sqlite:///{tmp_path / 'jobd.db'}")
    target = for_master(driver_target(url))
    quick = DriverRunner(DriverTarget(target.dialect, target.args, {**target.kwargs, "timeout": 0.3}, target.setup), url)
    holder = sqlite3.connect(tmp_path / "jobd.db", isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        released = threading.Timer(0.1, lambda: holder.execute("COMMIT"))
        released.start()
        put(quick, "t.waited", "1")  # got in once the holder let go
        released.join()
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreFault) as locked:
            put(quick, "t.gave_up", "1")
        assert "locked" in str(locked.value) and is_outage(locked.value)
        holder.execute("ROLLBACK")
        assert values(quick, "t.") == {"t.waited": "1"}
    finally:
        holder.close()
        quick.dispose()


@pytest.mark.mysql
def test_a_connection_the_server_killed_is_replaced_after_one_failed_transaction(mariadb_runner: DriverRunner) -> None:
    runner = mariadb_runner
    admin = pymysql.connect(host="127.0.0.1", user="root")
    try:
        first = connection_id(runner)
        with admin.cursor() as cursor:
            cursor.execute(f"KILL CONNECTION {first}")
        with pytest.raises(StoreFault) as lost:
            put(runner, "t.lost", "1")
        assert is_outage(lost.value) and lost.value.connection_invalidated
        put(runner, "t.next", "1")
        assert connection_id(runner) != first
        assert values(runner, "t.") == {"t.next": "1"}
    finally:
        admin.close()


@pytest.mark.mysql
def test_an_unreachable_server_is_an_outage_and_the_runner_reconnects_once_it_is_back(mariadb_url: str) -> None:
    initialise(mariadb_url)
    database = mariadb_url.rsplit("/", 1)[1]
    with TcpProxy() as proxy:
        runner = runner_for(proxy.url(database))
        try:
            put(runner, "t.before", "1")
            proxy.refuse()
            with pytest.raises(StoreFault) as refused:
                put(runner, "t.during", "1")
            assert is_outage(refused.value)
            proxy.heal()
            put(runner, "t.after", "1")
            assert values(runner, "t.") == {"t.before": "1", "t.after": "1"}
        finally:
            runner.dispose()


@pytest.mark.mysql
def test_a_mysql_connection_is_opened_again_once_old_never_under_a_transaction(
    mariadb_runner: DriverRunner, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = mariadb_runner
    first = connection_id(runner)
    monkeypatch.setattr("jobd.store.driver_runner.MYSQL_RECYCLE_SECONDS", -1.0)  # every connection is old now
    with runner.write() as sql:
        inside = int(sql.rows("SELECT CONNECTION_ID() AS id", ())[0]["id"])
        sql.run(f"INSERT INTO {META} (`key`, value) VALUES ({sql.marks(2)})", ("t.in", "1"))
        with runner.read() as again:  # a read inside the transaction stays on its connection
            assert int(again.rows("SELECT CONNECTION_ID() AS id", ())[0]["id"]) == inside
    assert inside != first
    assert values(runner, "t.") == {"t.in": "1"}


def test_a_forked_child_opens_its_own_connection_and_leaves_its_parents_alone(runner: DriverRunner) -> None:
    put(runner, "t.parent.before", "1")
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(reader)
        code = 0
        try:
            put(runner, "t.child", "1")
        except BaseException:  # noqa: BLE001 - the exit code says it
            code = 1
        os.write(writer, b"done")
        os._exit(code)
    os.close(writer)
    os.read(reader, 16)
    os.close(reader)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    put(runner, "t.parent.after", "1")  # the parent's connection still answers its own statements
    assert values(runner, "t.") == {"t.parent.before": "1", "t.child": "1", "t.parent.after": "1"}
