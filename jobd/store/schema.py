"""The store's tables, and the versioned steps that create and upgrade them.

Times are stored as seconds since the epoch (DOUBLE): the same on SQLite and
MySQL, free of time-zone conversions, and easy to write from any language
(``UNIX_TIMESTAMP()`` in an app's own INSERT).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import defaults
from ..states import JobState
from .job_claim_sql import UNDATED_WHERE

SCHEMA_VERSION = defaults.STORE_SCHEMA_VERSION
P = defaults.TABLE_PREFIX
#: v4: the database itself refuses a ``state`` that is not a jobd state (an
#: application's INSERT with a typo fails at once instead of waiting unseen).
STATE_CHECK_NAME = f"{P}jobs_state"
STATE_CHECK = "state IN (" + ", ".join(f"'{state}'" for state in sorted(str(state) for state in JobState)) + ")"
#: v4, SQLite: scheduled or retrying rows without a ``run_at`` (written by an
#: application; jobd always sets one) are due now. This partial index holds only
#: those rows, so the claim's promotion finds them with one probe.


def _now_default(dialect: str) -> sa.TextClause:
    """A server-side "now, in epoch seconds" default, so a plain INSERT needs no timestamps."""
    if dialect == "mysql":
        return sa.text("(UNIX_TIMESTAMP(CURRENT_TIMESTAMP(6)))")
    return sa.text("((julianday('now') - 2440587.5) * 86400.0)")


def _long_text(dialect: str) -> sa.types.TypeEngine[str]:
    """TEXT; MEDIUMTEXT on MySQL, whose TEXT holds 64 KB (the MySQL dialect is loaded only for a MySQL store)."""
    if dialect == "sqlite":
        return sa.Text()
    from sqlalchemy.dialects import mysql

    return sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def _table_options(dialect: str) -> dict[str, Any]:
    """InnoDB and utf8mb4 on MySQL; nothing elsewhere (naming MySQL's options loads its dialect)."""
    return {} if dialect == "sqlite" else {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}


def build_tables(dialect: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """The tables of schema ``SCHEMA_VERSION`` for the given SQLAlchemy dialect name."""
    metadata = sa.MetaData()
    text_type = _long_text(dialect)
    options = _table_options(dialect)
    epoch: sa.Double[float] = sa.Double()
    name = sa.String(defaults.MAX_NAME_LENGTH)

    meta = sa.Table(
        f"{P}meta",
        metadata,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )
    jobs = sa.Table(
        f"{P}jobs",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("daemon", sa.String(64), nullable=False),
        sa.Column("task", name, nullable=False),
        sa.Column("args", text_type, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=True),
        sa.Column("run_at", epoch, nullable=True),  # NULL: due now
        sa.Column("unique_key", name, nullable=True),
        sa.Column("fire_key", name, nullable=True),
        sa.Column("origin", sa.String(16), nullable=False, server_default="intent"),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("worker_pid", sa.Integer, nullable=True),
        sa.Column("checkpoint", text_type, nullable=True),
        sa.Column("progress", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("traceback", text_type, nullable=True),
        sa.Column("result", text_type, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", epoch, nullable=True, server_default=_now_default(dialect)),
        sa.Column("started_at", epoch, nullable=True),
        sa.Column("finished_at", epoch, nullable=True),
        sa.Column("updated_at", epoch, nullable=True),
        sa.Column("batch_id", sa.BigInteger, nullable=True),  # v7: the batch this job is a member of (jobd.batches)
        sa.CheckConstraint(STATE_CHECK, name=STATE_CHECK_NAME),
        *_key_uniqueness(dialect),
        # Claims read this index in order and stop after LIMIT rows (no filesort).
        sa.Index(f"{P}jobs_ready", "daemon", "state", sa.text("priority DESC"), "id"),
        # v3, SQLite: the other indexes are partial, leaving out the rows their
        # queries never ask for, so a plain job's INSERT and claim write fewer
        # B-tree pages. SQLite uses one only for a query whose WHERE implies the
        # index's (any comparison on the column does); queries on state alone go
        # through jobs_ready (state_lookup.py). MySQL has no partial indexes.
        # Promotion of scheduled/retrying jobs whose time has come.
        sa.Index(f"{P}jobs_waiting", "state", "run_at", sqlite_where=sa.text("run_at IS NOT NULL")),
        # A master's running jobs: recovery of a dead master's, cancel requests.
        sa.Index(f"{P}jobs_owner", "owner", "state", sqlite_where=sa.text("owner IS NOT NULL")),
        # Pruning of jobs that finished before the retention.
        sa.Index(f"{P}jobs_state_finished", "state", "finished_at", sqlite_where=sa.text("finished_at IS NOT NULL")),
        *_undated_index(dialect),
        # v7: a batch's members (cancel, `jobd batch ID`); SQLite: only the rows that have one.
        sa.Index(f"{P}jobs_batch", "batch_id", "state", sqlite_where=sa.text("batch_id IS NOT NULL")),
        **options,
    )
    masters = sa.Table(
        f"{P}masters",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("daemons", sa.Text, nullable=False),
        sa.Column("control_socket", sa.String(1024), nullable=True),
        sa.Column("started_at", epoch, nullable=False),
        sa.Column("heartbeat_at", epoch, nullable=False),
        sa.Column("stopped_at", epoch, nullable=True),
        **options,
    )
    schedules = sa.Table(
        f"{P}schedules",
        metadata,
        sa.Column("entry", name, primary_key=True),
        sa.Column("last_fire", epoch, nullable=True),  # every tick at or before it is decided
        sa.Column("last_job_id", sa.BigInteger, nullable=True),
        sa.Column("fired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped", sa.Integer, nullable=False, server_default="0"),  # overlap `forbid` skips
        sa.Column("last_skipped_at", epoch, nullable=True),
        sa.Column("updated_at", epoch, nullable=True),
        **options,
    )
    schedule_pauses = sa.Table(
        f"{P}schedule_pauses",
        metadata,
        sa.Column("target", name, primary_key=True),  # "daemon:NAME" or "entry:NAME"
        sa.Column("paused_at", epoch, nullable=False),
        **options,
    )
    locks = sa.Table(
        f"{P}locks",
        metadata,
        sa.Column("name", name, primary_key=True),  # mutex rows and leases ("claim:mailing", "prune")
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("expires_at", epoch, nullable=True),
        **options,
    )
    # v2: each job's own log lines (jobd.observability.job_logs), so `jobd logs ID` needs no grep.
    job_logs = sa.Table(
        f"{P}job_logs",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=True),
        sa.Column("created_at", epoch, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("logger", name, nullable=False),
        sa.Column("worker_pid", sa.Integer, nullable=True),
        sa.Column("message", text_type, nullable=False),
        sa.Index(f"{P}job_logs_job", "job_id", "id"),
        **options,
    )
    # Operators' desired state per host and daemon (jobd start/stop/scale DAEMON).
    daemon_states = sa.Table(
        f"{P}daemon_states",
        metadata,
        sa.Column("host", sa.String(255), primary_key=True),
        sa.Column("daemon", sa.String(64), primary_key=True),
        sa.Column("running", sa.Boolean, nullable=False),
        sa.Column("workers", sa.Integer, nullable=True),  # NULL: the config's `workers`
        sa.Column("updated_at", epoch, nullable=False),
        **options,
    )
    # v5: one token bucket per rate-limited key (jobd.store.rate_buckets): task '' is the daemon's own limit;
    # window_started counts the jobs started in calendar second window_second (at most the burst).
    rate_buckets = sa.Table(
        f"{P}rate_buckets",
        metadata,
        sa.Column("daemon", sa.String(64), primary_key=True),
        sa.Column("task", name, primary_key=True),
        sa.Column("tokens", epoch, nullable=False),
        sa.Column("updated_at", epoch, nullable=False),
        sa.Column("window_second", sa.BigInteger, nullable=False),
        sa.Column("window_started", sa.Integer, nullable=False),
        **options,
    )
    # v6: each daemon's task names and argument signatures (jobd.catalogue), so a submit imports no task code.
    task_catalogue = sa.Table(
        f"{P}task_catalogue",
        metadata,
        sa.Column("daemon", sa.String(64), primary_key=True),
        sa.Column("version", sa.String(64), nullable=False),  # digest of the daemon's config and task code
        sa.Column("tasks", text_type, nullable=False),  # JSON: task name → its parameters
        sa.Column("published_at", epoch, nullable=False),
        **options,
    )
    batches = build_batches_table(metadata, epoch, name, text_type, options)
    return metadata, {
        "meta": meta, "batches": batches, "jobs": jobs, "masters": masters, "job_logs": job_logs,
        "schedules": schedules, "schedule_pauses": schedule_pauses, "locks": locks,
        "daemon_states": daemon_states, "rate_buckets": rate_buckets,
        "task_catalogue": task_catalogue,
    }


def build_batches_table(
    metadata: sa.MetaData, epoch: sa.Double[float], name: sa.String, text_type: sa.types.TypeEngine[str], options: dict[str, Any],
) -> sa.Table:
    """v7: one row per batch, its counters written in the transaction of each member's ending (``store.batches``)."""
    return sa.Table(
        f"{P}batches",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("name", name, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # open | complete | cancelled (jobd.batch_record)
        sa.Column("sealed", sa.Boolean, nullable=False, server_default=sa.false()),  # no more members but a running member's
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("succeeded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("dead", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancelled", sa.Integer, nullable=False, server_default="0"),
        sa.Column("on_complete", text_type, nullable=True),  # JSON {"daemon", "task", "args"}
        sa.Column("on_failure", text_type, nullable=True),
        sa.Column("complete_job_id", sa.BigInteger, nullable=True),
        sa.Column("failure_job_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", epoch, nullable=False),
        sa.Column("finished_at", epoch, nullable=True),
        sa.Column("updated_at", epoch, nullable=False),
        sa.Index(f"{P}batches_state", "state", "id"),
        **options,
    )


def _undated_index(dialect: str) -> list[sa.Index]:
    """v4, SQLite only: MySQL finds such rows through ``jobs_waiting (state, run_at)``."""
    if dialect != "sqlite":
        return []
    return [sa.Index(f"{P}jobs_undated", "state", sqlite_where=sa.text(UNDATED_WHERE))]


KEY_COLUMNS = ("unique_key", "fire_key")  # each unique among the jobs that have one


def _key_uniqueness(dialect: str) -> list[sa.UniqueConstraint | sa.Index]:
    """``unique_key`` and ``fire_key`` are each unique among the jobs that have one.

    v8, SQLite: through partial unique indexes that hold only the rows with a
    key. A table constraint's index holds a NULL entry for every plain job
    too, which made every submit's INSERT write two more B-tree pages: 40%
    of the INSERT's time. A lookup by key (``unique_key = ?``, ``IN``)
    implies the index's WHERE, so SQLite still uses it. MySQL has no partial
    indexes: its unique constraints stay.
    """
    if dialect != "sqlite":
        return [sa.UniqueConstraint(column, name=f"{P}jobs_{column}") for column in KEY_COLUMNS]
    return [
        sa.Index(f"{P}jobs_{column}", column, unique=True, sqlite_where=sa.text(f"{column} IS NOT NULL"))
        for column in KEY_COLUMNS
    ]


PARTIAL_ON_SQLITE = tuple(f"{P}{name}" for name in ("jobs_waiting", "jobs_owner", "jobs_state_finished"))


def upgrade_steps() -> dict[int, str]:
    """What each schema version changed, in order.

    Steps 1, 2, 5 and 6 only add tables, which ``create_all`` creates; step 3 only
    replaces indexes (``upgrade``). No step changes a column, so the rows,
    and the SQL an application writes to submit, stay as they were.
    """
    return {
        1: "jobs, masters, meta",
        2: "job_logs: each job's own log lines; schedules, schedule_pauses, locks, daemon_states",
        3: "SQLite: partial secondary indexes on jobs (jobs_waiting, jobs_owner, jobs_state_finished "
        "leave out rows without run_at, owner, finished_at); MySQL: unchanged",
        4: "jobs: CHECK (state IN the jobd states); SQLite: the table is rebuilt to add it, and a partial "
        "index jobs_undated finds scheduled or retrying rows without run_at. Rows already stored with "
        "another state are kept as they are (listed by `jobd jobs --state`, never claimed)",
        5: "rate_buckets: one token bucket per rate-limited daemon or task, with the jobs it started in the "
        "current second, read and spent inside the claim so a rate limit holds across all masters",
        6: "task_catalogue: each daemon's task names and argument signatures, published by the master and "
        "`jobd check`, against which a submit checks an intent without importing task code",
        7: "batches: groups of jobs with counters and completion callbacks; jobs.batch_id and its index",
        8: "SQLite: jobs.unique_key and jobs.fire_key are unique through partial indexes holding only the rows "
        "that have a key, so a plain job's INSERT writes two fewer B-tree pages; the table is rebuilt to drop "
        "the table constraints (rows kept as they are). MySQL: unchanged",
    }


def upgrade(connection: sa.Connection, tables: dict[str, sa.Table], from_version: int) -> None:
    """The steps after ``from_version`` that ``create_all`` does not do (it only creates missing tables).

    Run in the caller's transaction, after ``create_all``; safe to run again.
    """
    if from_version < 3 and connection.dialect.name == "sqlite":
        # Same names, now partial: drop the full index and create it from the table's
        # definition (SQLite's DDL is transactional, so a failure leaves v2 as it was).
        for index in sorted(tables["jobs"].indexes, key=lambda index: str(index.name)):
            if index.name in PARTIAL_ON_SQLITE:
                connection.execute(sa.schema.DropIndex(index, if_exists=True))
                index.create(connection)
    if from_version < 7:
        _add_batch_column(connection, tables["jobs"])
    if from_version < 8 and connection.dialect.name == "sqlite":
        _rebuild_sqlite_jobs(connection, tables["jobs"])  # v4's CHECK and v8's partial key indexes, in one rebuild
    if from_version < 4 and connection.dialect.name != "sqlite":
        _add_mysql_state_check(connection, tables["jobs"])


def _add_batch_column(connection: sa.Connection, jobs: sa.Table) -> None:
    """v7: ``jobs.batch_id`` and its index (a SQLite rebuild after it copies the column with the rows)."""
    present = {column["name"] for column in sa.inspect(connection).get_columns(jobs.name)}
    if "batch_id" not in present:
        column_type = jobs.c.batch_id.type.compile(dialect=connection.dialect)
        connection.exec_driver_sql(f"ALTER TABLE {jobs.name} ADD COLUMN batch_id {column_type} NULL")
    for index in jobs.indexes:
        if index.name == f"{P}jobs_batch":
            index.create(connection, checkfirst=True)


def _rebuild_sqlite_jobs(connection: sa.Connection, jobs: sa.Table) -> None:
    """Give SQLite's jobs table its current definition: a new table, the rows copied as they are, then renamed.

    SQLite cannot add or drop a table constraint (its documented way is this
    rebuild): v4 added the state CHECK, v8 dropped the key columns' UNIQUE
    constraints for partial indexes. Rows stored earlier with a state that
    is not a jobd state are copied unchanged (``ignore_check_constraints``
    while copying): they stay visible. It all runs in the caller's
    transaction, so a failure leaves the table as it was. A table already
    in its current shape is not copied again (an upgrade run twice).
    """
    table_sql = _sqlite_table_sql(connection, jobs.name)
    if STATE_CHECK_NAME in table_sql and not any(f"{P}jobs_{column} UNIQUE" in table_sql for column in KEY_COLUMNS):
        for index in jobs.indexes:  # already rebuilt: only make sure the later versions' indexes are there
            index.create(connection, checkfirst=True)
        return
    rebuilt = f"{jobs.name}_rebuilt"
    create = str(sa.schema.CreateTable(jobs).compile(dialect=connection.dialect))
    head = f"CREATE TABLE {jobs.name} ("
    assert create.lstrip().startswith(head), create[:80]
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS {rebuilt}")
    connection.exec_driver_sql(create.lstrip().replace(head, f"CREATE TABLE {rebuilt} (", 1))
    old = {str(row[1]) for row in connection.exec_driver_sql(f"PRAGMA table_info({jobs.name})")}
    columns = ", ".join(column.name for column in jobs.columns if column.name in old)  # later versions' columns start empty
    connection.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
    try:
        connection.exec_driver_sql(f"INSERT INTO {rebuilt} ({columns}) SELECT {columns} FROM {jobs.name}")
    finally:
        connection.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")
    connection.exec_driver_sql(f"DROP TABLE {jobs.name}")  # and its indexes
    connection.exec_driver_sql(f"ALTER TABLE {rebuilt} RENAME TO {jobs.name}")
    for index in sorted(jobs.indexes, key=lambda index: str(index.name)):
        index.create(connection)


def _sqlite_table_sql(connection: sa.Connection, name: str) -> str:
    found = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).scalar()
    return str(found or "")


def _add_mysql_state_check(connection: sa.Connection, jobs: sa.Table) -> None:
    """``ALTER TABLE … ADD CONSTRAINT … CHECK``, keeping rows stored earlier with another state.

    MariaDB checks existing rows while it copies the table; with
    ``check_constraint_checks`` off for this session it keeps them, so
    they stay visible (MySQL has no such switch: there such rows fail the
    upgrade, which then says which constraint).
    """
    exists = connection.exec_driver_sql(
        "SELECT COUNT(*) FROM information_schema.CHECK_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = %s",
        (jobs.name, STATE_CHECK_NAME),
    ).scalar()
    if exists:
        return
    mariadb = bool(getattr(connection.dialect, "is_mariadb", False))
    if mariadb:
        connection.exec_driver_sql("SET SESSION check_constraint_checks = OFF")
    try:
        connection.exec_driver_sql(f"ALTER TABLE {jobs.name} ADD CONSTRAINT {STATE_CHECK_NAME} CHECK ({STATE_CHECK})")
    finally:
        if mariadb:
            connection.exec_driver_sql("SET SESSION check_constraint_checks = ON")
