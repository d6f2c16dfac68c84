"""Rows written with raw SQL, as another application would: helpers for the bad-row fault tests."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from jobd.store import Store
from jobd.store.schema import STATE_CHECK_NAME


def execute(store: Store, sql: str, **params: Any) -> Any:
    """Run one statement in its own transaction; return the new row's id for an INSERT."""
    with store.engine.begin() as connection:
        result = connection.execute(sa.text(sql), params)
        return result.lastrowid if sql.lstrip().upper().startswith("INSERT") else result.rowcount


def insert_job(store: Store, daemon: str, task: str, args_sql: str = "'{}'", **columns: Any) -> int:
    """INSERT a job the way an application does: columns by hand, ``args`` as an SQL expression."""
    names = ["daemon", "task", "args", *columns]
    values = [":daemon", ":task", args_sql, *(f":{name}" for name in columns)]
    return int(execute(
        store, f"INSERT INTO jobd_jobs ({', '.join(names)}) VALUES ({', '.join(values)})",
        daemon=daemon, task=task, **columns,
    ))


def downgrade_to_v3(store: Store) -> None:
    """Make an initialised store look like schema v3: no CHECK on jobs.state (and no v4 index)."""
    with store.engine.begin() as connection:
        if store.engine.dialect.name == "sqlite":
            create = connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'jobd_jobs'").scalar()
            create = re.sub(rf",\s*CONSTRAINT {STATE_CHECK_NAME} CHECK \(state IN \([^)]*\)\)", "", str(create))
            assert STATE_CHECK_NAME not in create
            indexes = list(connection.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'jobd_jobs' AND type = 'index' AND sql IS NOT NULL "
                "AND name != 'jobd_jobs_undated'"
            ).scalars())
            connection.exec_driver_sql("ALTER TABLE jobd_jobs RENAME TO jobd_jobs_old")
            connection.exec_driver_sql(create)
            connection.exec_driver_sql("INSERT INTO jobd_jobs SELECT * FROM jobd_jobs_old")
            connection.exec_driver_sql("DROP TABLE jobd_jobs_old")
            for index in indexes:
                connection.exec_driver_sql(index)
        else:
            connection.exec_driver_sql(f"ALTER TABLE jobd_jobs DROP CONSTRAINT {STATE_CHECK_NAME}")
        connection.exec_driver_sql("UPDATE jobd_meta SET value = '3' WHERE `key` = 'schema_version'"
                                   if store.engine.dialect.name == "mysql" else
                                   "UPDATE jobd_meta SET value = '3' WHERE key = 'schema_version'")


def downgrade_keys_to_v7(store: Store) -> None:
    """Make a SQLite store look as jobd v7 left it: the key columns unique through table constraints."""
    with store.engine.begin() as connection:
        create = str(connection.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'jobd_jobs'").scalar())
        indexes = list(connection.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'jobd_jobs' AND type = 'index' AND sql IS NOT NULL "
            "AND name NOT IN ('jobd_jobs_unique_key', 'jobd_jobs_fire_key')"
        ).scalars())
        constraints = ", CONSTRAINT jobd_jobs_unique_key UNIQUE (unique_key), CONSTRAINT jobd_jobs_fire_key UNIQUE (fire_key)"
        closing = create.rindex(")")
        connection.exec_driver_sql("ALTER TABLE jobd_jobs RENAME TO jobd_jobs_old")
        connection.exec_driver_sql(create[:closing] + constraints + create[closing:])
        connection.exec_driver_sql("INSERT INTO jobd_jobs SELECT * FROM jobd_jobs_old")
        connection.exec_driver_sql("DROP TABLE jobd_jobs_old")
        for index in indexes:
            connection.exec_driver_sql(index)
        connection.exec_driver_sql("UPDATE jobd_meta SET value = '7' WHERE key = 'schema_version'")
