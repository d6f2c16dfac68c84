"""Many jobs in few statements: multi-row INSERTs sized to what each database accepts, with no SQLAlchemy.

One ``INSERT … VALUES (…), (…), …`` per chunk instead of one statement (and,
for a lone submit, one commit) per job. A chunk is as large as the database
takes in one statement: on SQLite, the number of bound variables a statement
may hold (``SQLITE_LIMIT_VARIABLE_NUMBER``, the connection's); on
MySQL/MariaDB, the size of one packet (``@@max_allowed_packet``, read once
per bulk), counted with an upper bound on each value's escaped length.

Ids come back in the items' order: ``RETURNING id`` where the database has
it (SQLite ≥ 3.35, MariaDB ≥ 10.5); the ids one statement generates grow
with the rows' order on both, so the chunk's ids, sorted, are its rows'.
Where it does not (MySQL), each row is its own INSERT in the same
transaction, so every id is read from the statement that made it.

Unique keys: a key already held by an unfinished job, or given twice in the
bulk, is reported as a duplicate (with the job that holds it) and not
inserted; nothing is raised midway. A concurrent submitter that commits the
same key between the look-up and the INSERT makes that chunk's statement
fail as a whole (the unique index); the chunk is looked up again and retried.

The SQL is made of jobd's own table and column names and placeholders: no
value is ever pasted into it. ``BulkInsertSql`` runs it on any
``BulkExecutor``: a DB-API cursor (an application's bulk submit through the
driver alone, ``jobd.ops.quick_submit``) or the store's engine
(``bulk_insert.BulkJobInsert``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol

from ..states import JobState
from ..submit_options import check_submit_options
from .job_reads_sql import JOBS, placeholder
from .sql_statements import is_duplicate_key, sqlite_variable_limit

#: The columns every bulk row sets.
COLUMNS = (
    "daemon", "task", "args", "state", "priority", "attempts", "max_attempts",
    "run_at", "unique_key", "origin", "created_at", "updated_at",
)
MAX_ROWS_PER_STATEMENT = 2000  # past this, a larger statement buys nothing measurable
MYSQL_STATEMENT_SHARE = 0.5  # of max_allowed_packet: room for the statement's own text and the protocol
MAX_KEY_LOOKUPS_PER_STATEMENT = 500
RACE_RETRIES = 5  # a chunk that keeps losing unique keys to concurrent submitters is given up on


@dataclass(frozen=True)
class BulkJobs:
    """The jobs of one bulk: what they share, and each one's encoded args and unique key."""

    daemon: str
    task: str
    encoded_args: Sequence[str]
    unique_keys: Sequence[str | None] | None = None  # one per job, or None: no job has one
    priority: int = 0
    run_at: float | None = None
    max_attempts: int | None = None
    origin: str = "intent"

    def __post_init__(self) -> None:
        check_submit_options(priority=self.priority, run_at=self.run_at, max_attempts=self.max_attempts)

    @property
    def own_columns(self) -> tuple[str, ...]:
        """The columns whose value differs from job to job; every other column's is shared."""
        return ("args", "unique_key") if self.unique_keys is not None else ("args",)

    def shared(self, now: float) -> dict[str, Any]:
        """The values every job of the bulk has, by column."""
        due_later = self.run_at is not None and self.run_at > now
        values = {
            "daemon": self.daemon, "task": self.task, "state": str(JobState.SCHEDULED if due_later else JobState.QUEUED),
            "priority": self.priority, "attempts": 0, "max_attempts": self.max_attempts, "run_at": self.run_at,
            "unique_key": None, "origin": self.origin, "created_at": now, "updated_at": now,
        }
        for column in self.own_columns:
            values.pop(column, None)
        return values

    def rows(self) -> list[tuple[Any, ...]]:
        """Each job's own values, in ``own_columns`` order."""
        if self.unique_keys is None:
            return [(args,) for args in self.encoded_args]
        return list(zip(self.encoded_args, self.unique_keys))


@dataclass(frozen=True)
class Inserted:
    """What a bulk insert did: an id per row (``None`` for a duplicate), and the duplicates' holders."""

    ids: list[int | None]
    held_by: dict[int, int]  # row index → id of the unfinished job already holding its unique key (in the store)
    repeated: dict[int, int]  # row index → index of the earlier row of this bulk with the same key


def chunks(rows: Sequence[tuple[Any, ...]], max_rows: int, max_bytes: int | None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` ranges of ``rows``: at most ``max_rows`` rows, and ``max_bytes`` by ``row_bytes``.

    A row larger than ``max_bytes`` alone is its own chunk (the database says
    whether it takes it, as it would for a single submit).
    """
    if max_bytes is None:
        yield from ((start, min(start + max_rows, len(rows))) for start in range(0, len(rows), max_rows))
        return
    start, size = 0, 0
    for index, row in enumerate(rows):
        length = row_bytes(row)
        if index > start and (index - start >= max_rows or size + length > max_bytes):
            yield start, index
            start, size = index, 0
        size += length
    if start < len(rows):
        yield start, len(rows)


def row_bytes(row: tuple[Any, ...]) -> int:
    """An upper bound on the length of a row's values in a MySQL statement's text.

    A character is at most 4 bytes in UTF-8 and escaping at most doubles an
    ASCII one, so ``4 × len + quotes`` bounds a string; a number or NULL
    takes at most 24 characters; plus the separators.
    """
    total = 4
    for value in row:
        total += 4 * len(value) + 4 if isinstance(value, str) else 26
    return total


class BulkExecutor(Protocol):
    """Statements inside the bulk's transaction: rows back, or an INSERT's first id and row count."""

    def run(self, sql: str, parameters: Any) -> list[tuple[Any, ...]]: ...
    def inserted(self, sql: str, parameters: Any) -> tuple[int, int]: ...


@dataclass(frozen=True)
class _Limits:
    max_rows: int
    max_bytes: int | None  # MySQL: the statement's size
    consecutive_ids: bool  # MySQL: one statement's ids are consecutive (``innodb_autoinc_lock_mode`` ≤ 1)
    id_step: int = 1  # MySQL's ``auto_increment_increment``
    returning: bool = True  # the database answers an INSERT's ids (SQLite 3.35+, MariaDB 10.5+)


class BulkInsertSql:
    """A bulk's statements for one dialect, run on a ``BulkExecutor`` inside one transaction; no SQLAlchemy.

    ``returning``: whether the database answers an INSERT's ids; None: ask
    a MySQL server (MariaDB 10.5+ does, MySQL does not).
    """

    def __init__(self, dialect: str, *, returning: bool | None) -> None:
        self.dialect = dialect
        self.returning = returning
        self._sql: dict[tuple[Any, ...], str] = {}

    def insert(self, bulk: BulkJobs, now: float, executor: BulkExecutor, *, variable_limit: int | None = None) -> Inserted:
        """Insert ``bulk``'s jobs through ``executor``; ``variable_limit``: the SQLite connection's bound-value limit."""
        rows = bulk.rows()
        shared = bulk.shared(now)
        ids: list[int | None] = [None] * len(rows)
        held_by: dict[int, int] = {}
        keyed = bulk.unique_keys is not None
        repeated = _repeated_keys(rows) if keyed else {}
        limits = self._limits(executor, variable_limit, len(shared), len(bulk.own_columns))
        for start, end in chunks(rows, limits.max_rows, limits.max_bytes):
            if not keyed:
                ids[start:end] = self._write(executor, limits, shared, rows[start:end])
                continue
            positions = [index for index in range(start, end) if index not in repeated]
            failed: Exception | None = None
            for _attempt in range(RACE_RETRIES):
                holders = self._holders(executor, [rows[index][1] for index in positions])
                taken = [index for index in positions if rows[index][1] in holders]
                for index in taken:
                    held_by[index] = holders[rows[index][1]]
                if failed is not None and not taken:
                    raise failed  # not a key taken since the look-up: the database refused something else
                positions = [index for index in positions if index not in held_by]
                try:
                    for index, job_id in zip(positions, self._write(executor, limits, shared, [rows[index] for index in positions])):
                        ids[index] = job_id
                    break
                except Exception as error:
                    if not is_duplicate_key(error):
                        raise
                    failed = error  # the statement failed whole (unique index): a concurrent submit may have taken a key
            else:
                assert failed is not None
                raise failed
        return Inserted(ids, held_by, repeated)

    def _limits(self, executor: BulkExecutor, variable_limit: int | None, shared: int, own: int) -> _Limits:
        if self.dialect == "sqlite":
            variables = variable_limit if variable_limit is not None else sqlite_variable_limit()
            return _Limits(max(1, min(MAX_ROWS_PER_STATEMENT, (variables - shared) // own)), None, False)
        packet, lock_mode, step, version = executor.run(
            "SELECT @@max_allowed_packet, @@innodb_autoinc_lock_mode, @@auto_increment_increment, VERSION()", ()
        )[0]
        returning = self.returning if self.returning is not None else server_returns_ids(str(version))
        return _Limits(MAX_ROWS_PER_STATEMENT, int(int(packet) * MYSQL_STATEMENT_SHARE), int(lock_mode) <= 1, int(step), returning)

    def _write(self, executor: BulkExecutor, limits: _Limits, shared: dict[str, Any], rows: list[tuple[Any, ...]]) -> list[int]:
        """Insert ``rows`` in one statement; their ids, in their order."""
        if not rows:
            return []
        own = len(rows[0])
        if self.dialect == "sqlite":  # numbered parameters, the shared ones bound once
            parameters: Any = (*shared.values(), *chain.from_iterable(rows))
        else:  # PyMySQL: named parameters, the shared ones escaped once
            parameters = {f"s{number}": value for number, value in enumerate(shared.values())}
            for index, row in enumerate(rows):
                for column, value in enumerate(row):
                    parameters[f"r{index}_{column}"] = value
        if limits.consecutive_ids:
            first, count = executor.inserted(self._statement(tuple(shared), own, len(rows), returning=False), parameters)
            if count != len(rows):
                raise RuntimeError(f"a bulk INSERT of {len(rows)} rows wrote {count}")
            return list(range(first, first + count * limits.id_step, limits.id_step))
        if limits.returning:
            returned = executor.run(self._statement(tuple(shared), own, len(rows), returning=True), parameters)
            return sorted(int(row[0]) for row in returned)
        # MySQL that may interleave ids between statements, without RETURNING: one row per statement.
        executor.run("SAVEPOINT jobd_bulk_chunk", ())
        try:
            return [self._write(executor, _Limits(1, None, True), shared, [row])[0] for row in rows]
        except BaseException:
            executor.run("ROLLBACK TO SAVEPOINT jobd_bulk_chunk", ())
            raise

    def _statement(self, shared: tuple[str, ...], own: int, count: int, *, returning: bool) -> str:
        """The INSERT of ``count`` rows: shared columns' values bound once, ``own`` values per row (jobd's own column names)."""
        key = (shared, own, count, returning)
        sql = self._sql.get(key)
        if sql is None:
            own_columns = [column for column in COLUMNS if column not in shared]
            order = [*shared, *own_columns]
            if self.dialect == "sqlite":
                marker = {column: f"?{shared.index(column) + 1}" for column in shared}
                rows = (
                    "(" + ", ".join(marker.get(column) or f"?{len(shared) + index * own + own_columns.index(column) + 1}" for column in order) + ")"
                    for index in range(count)
                )
            else:
                marker = {column: f"%(s{shared.index(column)})s" for column in shared}
                rows = (
                    "(" + ", ".join(marker.get(column) or f"%(r{index}_{own_columns.index(column)})s" for column in order) + ")"
                    for index in range(count)
                )
            sql = f"INSERT INTO {JOBS} ({', '.join(order)}) VALUES {', '.join(rows)}"
            if returning:
                sql += " RETURNING id"
            if len(self._sql) > 64:
                self._sql.clear()
            self._sql[key] = sql
        return sql

    def _holders(self, executor: BulkExecutor, keys: list[str | None]) -> dict[str, int]:
        """The unfinished jobs already holding any of ``keys``: key → id."""
        wanted = sorted({key for key in keys if key is not None})
        marker = placeholder(self.dialect)
        found: dict[str, int] = {}
        for start in range(0, len(wanted), MAX_KEY_LOOKUPS_PER_STATEMENT):
            part = wanted[start : start + MAX_KEY_LOOKUPS_PER_STATEMENT]
            sql = f"SELECT id, unique_key FROM {JOBS} WHERE unique_key IN ({', '.join([marker] * len(part))})"
            for job_id, key in executor.run(sql, tuple(part)):
                found[key] = int(job_id)
        return found


def server_returns_ids(version: str) -> bool:
    """Whether a MySQL server with this ``VERSION()`` answers ``INSERT … RETURNING``: MariaDB from 10.5."""
    if "mariadb" not in version.lower():
        return False
    try:
        major, minor = (int(part) for part in version.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= (10, 5)


def _repeated_keys(rows: Sequence[tuple[Any, ...]]) -> dict[int, int]:
    """Rows whose unique key an earlier row of the same bulk already has: index → that earlier index."""
    first: dict[str, int] = {}
    repeated: dict[int, int] = {}
    for index, (_args, key) in enumerate(rows):
        if key is None:
            continue
        earlier = first.setdefault(key, index)
        if earlier != index:
            repeated[index] = earlier
    return repeated


class CursorExecutor:
    """Statements on a DB-API cursor inside the caller's transaction (its errors are the driver's, or SQLAlchemy's)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def run(self, sql: str, parameters: Any) -> list[tuple[Any, ...]]:
        self.cursor.execute(sql, parameters)
        return list(self.cursor.fetchall()) if self.cursor.description else []

    def inserted(self, sql: str, parameters: Any) -> tuple[int, int]:
        """(first id, rows written) of a MySQL INSERT."""
        self.cursor.execute(sql, parameters)
        return int(self.cursor.lastrowid), int(self.cursor.rowcount)
