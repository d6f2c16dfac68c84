"""jobd under test: a master with one daemon of 2 workers, on SQLite or on MariaDB.

This module is also the daemon's task module (``modules = ["jobd_adapter"]``):
its worker processes import it and serve ``bench.work``. Jobs are bulk
enqueued with ``Store.jobs.insert_many`` and submitted one at a time with
``jobd.submit`` (validation, durable insert, wake-up of the master), and the
run is done when the store counts every job ``succeeded`` — jobd's promise,
which is stronger than "the task ran". The store is set up as a deployment's
is once its master has started: tables made (``jobd init``) and the task
catalogue published (`jobd check`; a master publishes it at start), so a
submit checks its intent against the catalogue, as in production, even in
the submit loop, which runs with no master.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from typing import Any

import jobd
import stamps
from base import ADAPTERS_DIR, WORKERS, Adapter

DAEMON = "bench"
TASK = "bench.work"


@jobd.task(TASK)
def work(ctx: Any, submitted: float = 0.0, seconds: float = 0.0) -> None:
    stamps.work(submitted, seconds)


class JobdAdapter(Adapter):
    name = "jobd-sqlite"
    packages = ("jobd", "SQLAlchemy")

    def store_url(self) -> str:
        return f"sqlite:///{self.workdir / 'jobd.db'}"

    def setup(self) -> None:
        from jobd.store import open_store

        self.url = self.store_url()
        self.config = self.workdir / "jobd.toml"
        self.config.write_text(
            "\n".join(
                [
                    f"store = {json.dumps(self.url)}",
                    'socket = "jobd.sock"',
                    'pid_file = "jobd.pid"',
                    'log_file = "jobd.log"',
                    'log_level = "WARNING"',  # like every peer here: no log line per job
                    f"python_path = [{json.dumps(str(ADAPTERS_DIR))}]",
                    f"[daemons.{DAEMON}]",
                    f"workers = {WORKERS}",
                    'modules = ["jobd_adapter"]',
                ]
            )
            + "\n"
        )
        self.store = open_store(self.url)
        self.store.initialise()
        subprocess.run([sys.executable, "-m", "jobd.cli.app", "check", "-c", str(self.config)],
                       check=True, capture_output=True, timeout=120)

    def enqueue_bulk(self, count: int, seconds: float) -> None:
        from jobd.store import NewJob

        args = {"seconds": seconds} if seconds else {}
        self.store.jobs.insert_many([NewJob(DAEMON, TASK, dict(args)) for _ in range(count)])

    def submit(self, submitted: float) -> None:
        jobd.submit(DAEMON, TASK, {"submitted": submitted}, config=str(self.config))

    def worker_command(self) -> list[str]:
        return [sys.executable, "-m", "jobd.cli.app", "start", "--foreground", "-c", str(self.config)]

    def finished_by_own_account(self, count: int) -> bool:
        return self.store.jobs.counts().get(DAEMON, {}).get("succeeded", 0) >= count

    def status(self) -> dict[str, Any] | None:
        from jobd.control import client
        from jobd.errors import JobdError

        try:
            return client.call(self.workdir / "jobd.sock", "status", timeout=5)
        except (JobdError, OSError):
            return None

    def roles(self) -> tuple[list[int], list[int]]:
        """Workers are the pids the master reports; the master, its fork server and helpers are the rest."""
        supervisor, _children = super().roles()
        status = self.status()
        workers = [w["pid"] for w in (status or {}).get("daemons", {}).get(DAEMON, {}).get("workers", [])]
        return [pid for pid in supervisor + _children if pid not in workers], workers

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.dispose()

    @classmethod
    def versions(cls) -> dict[str, str]:
        import sqlite3

        return {**super().versions(), "sqlite": sqlite3.sqlite_version}


class JobdMariaDBAdapter(JobdAdapter):
    """The same, on a MariaDB database created for this run and dropped after it."""

    name = "jobd-mariadb"
    packages = ("jobd", "SQLAlchemy", "PyMySQL")
    server = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

    @classmethod
    def missing(cls) -> str | None:
        problem = super().missing()
        if problem:
            return problem
        import pymysql

        try:
            pymysql.connect(**cls.server, connect_timeout=3).close()
        except pymysql.MySQLError as error:
            return f"MariaDB is not reachable on 127.0.0.1:3306 ({error})"
        return None

    def store_url(self) -> str:
        import pymysql

        self.database = f"jobdbench_{secrets.token_hex(4)}"
        connection = pymysql.connect(**self.server)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{self.database}` CHARACTER SET utf8mb4")
        finally:
            connection.close()
        return f"mysql+pymysql://root@127.0.0.1:3306/{self.database}"

    @classmethod
    def commit_floor(cls, count: int) -> float:
        """The server's own rate for a loop of one-row autocommit INSERTs into a two-column table; rows/s.

        No loop of submits that are durable when they return goes faster on
        this server, jobd's or anyone's (with ``innodb_flush_log_at_trx_commit=1``
        each commit writes and flushes the redo log). Its own database, dropped after.
        """
        import pymysql

        database = f"jobdbench_floor_{secrets.token_hex(4)}"
        connection = pymysql.connect(**cls.server, autocommit=True)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE `{database}`")
                cursor.execute(f"CREATE TABLE `{database}`.floor (id BIGINT AUTO_INCREMENT PRIMARY KEY, payload VARCHAR(64))")
                insert = f"INSERT INTO `{database}`.floor (payload) VALUES (%s)"
                began = time.perf_counter()
                for n in range(count):
                    cursor.execute(insert, (f'{{"n": {n}}}',))
                elapsed = time.perf_counter() - began
                cursor.execute(f"DROP DATABASE `{database}`")
        finally:
            connection.close()
        return count / elapsed

    def teardown(self) -> None:
        super().teardown()
        if not hasattr(self, "database"):
            return
        import pymysql

        connection = pymysql.connect(**self.server)
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{self.database}`")
        finally:
            connection.close()

    @classmethod
    def versions(cls) -> dict[str, str]:
        import pymysql

        versions = super().versions()
        connection = pymysql.connect(**cls.server)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                versions["mariadb server"] = str(cursor.fetchone()[0])
        finally:
            connection.close()
        return versions


