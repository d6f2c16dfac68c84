"""Snapshots of a tenant before its pending steps, and their atomic restore.

MariaDB commits every DDL statement on its own, so a failed step cannot be
rolled back: the snapshot is the way back. It lives in a database of its own
(``<tenant>__snap_<run>``) so the tenant's schema never shows jobd's copies.

* take: ``CREATE TABLE … LIKE`` for every table (indexes, options, the
  AUTO_INCREMENT counter), then one consistent-read transaction copies the
  rows, so the copied tables agree with each other.
* restore: ONE ``RENAME TABLE`` statement moves the current tables aside
  into the snapshot database (as ``failed_NNN``, kept for inspection until
  pruned) and the copies into their place. MariaDB applies a multi-table
  rename atomically, so readers see the old tables or the restored ones,
  never a mix. Tables the steps created are moved aside as well.

Foreign keys are not copied by ``CREATE TABLE … LIKE`` and would follow a
renamed table, so tables involved in foreign keys are refused up front.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jobd.migrations.database import TenantConnection
from jobd.migrations.errors import SnapshotError
from jobd.migrations.identifiers import quote
from jobd.migrations.runs import RUNS_TABLE
from jobd.migrations.settings import SnapshotMode
from jobd.migrations.touched import Touched
from jobd.migrations.tracking import TRACKING_TABLE

SNAPSHOT_MARKER = "__snap_"
_AUTO_INCREMENT = re.compile(r"\bAUTO_INCREMENT=(\d+)")


@dataclass(frozen=True)
class SnapshotPlan:
    """The tables to copy (they exist now) and those to remove on restore (they do not).

    A ``whole_schema`` plan restores the schema as a whole: every table not
    in the snapshot was created after it, and is moved aside on restore even
    if no step was understood to name it.
    """

    copy: tuple[str, ...]
    absent: tuple[str, ...]
    reason: str
    whole_schema: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"copy": list(self.copy), "absent": list(self.absent), "whole_schema": self.whole_schema}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SnapshotPlan:
        """The plan a run recorded (``whole_schema`` absent in rows written before it existed)."""
        return cls(tuple(data.get("copy", [])), tuple(data.get("absent", [])), "", bool(data.get("whole_schema", False)))


def snapshot_database_name(tenant_database: str, run_id: str) -> str:
    """Where a run's snapshot lives; readable when the tenant name allows, always ≤ 64 chars."""
    name = f"{tenant_database}{SNAPSHOT_MARKER}{run_id[:12]}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(tenant_database.encode()).hexdigest()[:10]
    return f"{tenant_database[:64 - 30]}_{digest}{SNAPSHOT_MARKER}{run_id[:12]}"


def choose_tables(mode: SnapshotMode, touched: Touched, existing: Iterable[str]) -> SnapshotPlan:
    """Which tables a snapshot in ``mode`` must hold (pure).

    The tracking table is always included so a restore also restores which
    steps the tenant had; the runs table never is.
    """
    existing_tables = set(existing) - {RUNS_TABLE}
    if mode is SnapshotMode.NONE:
        return SnapshotPlan((), (), "snapshot disabled (--snapshot none)")
    whole_schema = mode is SnapshotMode.SCHEMA or not touched.complete
    if whole_schema:
        reason = "whole schema" if mode is SnapshotMode.SCHEMA else f"whole schema: {touched.reason}"
        wanted = existing_tables | set(touched.tables)
    else:
        reason = "tables the pending steps touch"
        wanted = set(touched.tables)
    wanted = (wanted - {RUNS_TABLE}) | {TRACKING_TABLE}
    copy = tuple(sorted(table for table in wanted if table in existing_tables))
    absent = tuple(sorted(table for table in wanted if table not in existing_tables))
    return SnapshotPlan(copy, absent, reason, whole_schema)


def check_no_foreign_keys(session: TenantConnection, tables: Iterable[str]) -> None:
    """Refuse to snapshot tables that reference or are referenced by a foreign key."""
    names = sorted(set(tables))
    if not names:
        return
    rows = session.execute(
        "SELECT TABLE_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
        "WHERE CONSTRAINT_SCHEMA = :db",
        db=session.tenant.database,
    )
    involved = sorted({name for row in rows for name in row if name in names})
    if involved:
        raise SnapshotError(
            f"tenant {session.tenant.name}: tables {', '.join(involved)} take part in foreign keys, "
            "which a snapshot cannot restore exactly; migrate with --snapshot none after a backup"
        )


def take_snapshot(session: TenantConnection, snapshot_database: str, tables: Iterable[str]) -> None:
    """Copy ``tables`` of the tenant into a new snapshot database.

    The copy is the snapshot's whole cost (rows × tables), so it takes
    InnoDB's bulk-load path: fresh empty tables, filled in one transaction
    with unique and foreign-key checks off. Both checks are redundant here:
    the rows come from a table that already satisfied them, and tables in
    foreign keys are refused before a snapshot is taken.
    """
    tenant_database = session.tenant.database
    session.run_raw(f"CREATE DATABASE {quote(snapshot_database)}")
    names = list(tables)
    columns_of = _copyable_columns(session, names)
    for table in names:
        session.run_raw(f"CREATE TABLE {quote(snapshot_database, table)} LIKE {quote(tenant_database, table)}")
        counter = _auto_increment(session, tenant_database, table)
        if counter is not None:
            session.run_raw(f"ALTER TABLE {quote(snapshot_database, table)} AUTO_INCREMENT = {int(counter)}")
    session.run_raw("SET SESSION unique_checks = 0, foreign_key_checks = 0")
    try:
        session.run_raw("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        for table in names:
            columns = ", ".join(quote(column) for column in columns_of[table])
            session.run_raw(
                f"INSERT INTO {quote(snapshot_database, table)} ({columns}) "
                f"SELECT {columns} FROM {quote(tenant_database, table)}"
            )
        session.run_raw("COMMIT")
    finally:
        session.run_raw("SET SESSION unique_checks = 1, foreign_key_checks = 1")


def restore_snapshot(session: TenantConnection, snapshot_database: str, plan: SnapshotPlan) -> None:
    """Put the snapshot's tables back in one atomic RENAME TABLE."""
    tenant_database = session.tenant.database
    if snapshot_restored(session, snapshot_database, plan):
        raise SnapshotError(
            f"tenant {session.tenant.name}: snapshot {snapshot_database} was already restored"
        )
    present_in_snapshot = set(session.base_tables(snapshot_database))
    current = set(session.base_tables())
    taken = {name for name in present_in_snapshot if name.startswith("failed_")}
    moved = set(plan.copy) | set(plan.absent)
    if plan.whole_schema:
        moved |= current - {RUNS_TABLE}
    renames: list[str] = []
    counter = len(taken)
    for table in sorted(moved):
        if table in current:
            counter += 1
            aside = f"failed_{counter:03d}_{table}"[:64]
            renames.append(f"{quote(tenant_database, table)} TO {quote(snapshot_database, aside)}")
        if table in plan.copy:
            renames.append(f"{quote(snapshot_database, table)} TO {quote(tenant_database, table)}")
    if renames:
        session.run_raw("RENAME TABLE " + ", ".join(renames))


def snapshot_restored(session: TenantConnection, snapshot_database: str, plan: SnapshotPlan) -> bool:
    """Whether the snapshot's tables were already moved back into the tenant.

    The restore is one atomic RENAME, so its copies are either all still in
    the snapshot database (not restored) or all gone (restored). A runner
    killed right after the RENAME, before it recorded it, is recognised by
    this instead of failing on a snapshot that looks incomplete.
    """
    present = set(session.base_tables(snapshot_database))
    missing = [table for table in plan.copy if table not in present]
    if not missing:
        return False
    if len(missing) == len(plan.copy):
        return True
    raise SnapshotError(
        f"tenant {session.tenant.name}: snapshot {snapshot_database} lacks {', '.join(missing)}; "
        "it is incomplete and cannot be restored"
    )


def drop_snapshot(session: TenantConnection, snapshot_database: str) -> None:
    session.run_raw(f"DROP DATABASE IF EXISTS {quote(snapshot_database)}")


def _auto_increment(session: TenantConnection, database: str, table: str) -> int | None:
    row = session.execute(f"SHOW CREATE TABLE {quote(database, table)}").first()
    match = _AUTO_INCREMENT.search(row[1]) if row else None
    return int(match.group(1)) if match else None


def _copyable_columns(session: TenantConnection, tables: list[str]) -> dict[str, list[str]]:
    """Each table's columns whose values can be inserted (generated ones are recomputed), in one query."""
    found: dict[str, list[str]] = {table: [] for table in tables}
    if not tables:
        return found
    rows = session.execute(
        "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db "
        "AND EXTRA NOT LIKE '%GENERATED%' ORDER BY TABLE_NAME, ORDINAL_POSITION",
        db=session.tenant.database,
    )
    for table, column in rows:
        if table in found:
            found[table].append(column)
    return found
