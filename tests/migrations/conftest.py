"""Fixtures for the migration engine: real MariaDB tenant fleets, always dropped.

Other engineers run their suites against the same server at the same time,
so every database a test creates starts with a random ``jobdt_mig_<hex>_``
prefix and teardown drops every database with that prefix (snapshots
included, since they are named after their tenant).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from jobd.migrations.settings import MigrationsSettings, load_migrations_settings

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tenants"
CONTACTS_PER_TENANT = 30


def connect(database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(**MARIADB, database=database, autocommit=True)


@dataclass
class Fleet:
    """A registry and N tenant databases built from the example schema."""

    prefix: str
    tenants: list[str]
    config_path: Path
    folder: Path

    def database(self, tenant: str) -> str:
        return f"{self.prefix}{tenant}"

    @property
    def registry(self) -> str:
        return f"{self.prefix}registry"

    @property
    def settings(self) -> MigrationsSettings:
        return load_migrations_settings(self.config_path)

    def sql(self, database: str | None, statement: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
        connection = connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, args or None)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def databases(self) -> list[str]:
        """Every database of this fleet, snapshots included."""
        return sorted(name for (name,) in self.sql(None, "SHOW DATABASES") if name.startswith(self.prefix))

    def fingerprint(self, tenant: str) -> dict[str, tuple[int, str]]:
        """CHECKSUM TABLE and SHOW CREATE TABLE of every table of the tenant (runs table aside)."""
        database = self.database(tenant)
        connection = connect(database)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
                tables = sorted(row[0] for row in cursor.fetchall() if row[0] != "jobd_migration_runs")
                result = {}
                for table in tables:
                    cursor.execute(f"CHECKSUM TABLE `{table}`")
                    checksum = cursor.fetchone()[1]
                    cursor.execute(f"SHOW CREATE TABLE `{table}`")
                    result[table] = (checksum, cursor.fetchone()[1])
                return result
        finally:
            connection.close()

    def applied(self, tenant: str) -> list[str]:
        rows = self.sql(self.database(tenant), "SELECT CONCAT(file, ':', tag) FROM jobd_migrations ORDER BY id")
        return [row[0] for row in rows]

    def seed_duplicates(self, tenant: str) -> None:
        """Two contacts sharing an address: the unique-email step fails here."""
        self.sql(self.database(tenant), "UPDATE contacts SET email = 'dup@example.com' WHERE id IN (1, 2)")

    def fix_duplicates(self, tenant: str) -> None:
        self.sql(self.database(tenant), "UPDATE contacts SET email = CONCAT('c', id, '@example.com') WHERE id IN (1, 2)")

    def add_registry_row(self, name: str, database: str) -> None:
        self.sql(self.registry, "INSERT INTO tenants (name, db_name) VALUES (%s, %s)", name, database)

    def run_cli(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """``python -m jobd.cli.migrate --config … ARGS`` as a real process."""
        return subprocess.run(
            [sys.executable, "-m", "jobd.cli.migrate", *args, "--config", str(self.config_path)],
            capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"},
        )

    def popen_cli(self, *args: str, capture: bool = True) -> subprocess.Popen[str]:
        """A runner process; without ``capture`` its output is discarded (for kill tests)."""
        output = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.Popen(
            [sys.executable, "-m", "jobd.cli.migrate", *args, "--config", str(self.config_path)],
            stdout=output, stderr=output, text=True, env={**os.environ, "COLUMNS": "200"},
        )


def build_fleet(prefix: str, count: int, workdir: Path, *, extra_config: str = "") -> Fleet:
    tenants = [f"t{index:02d}" for index in range(1, count + 1)]
    folder = workdir / "migrations"
    shutil.copytree(EXAMPLE / "migrations", folder)
    schema = [part.strip() for part in (EXAMPLE / "schema.sql").read_text().split(";") if "CREATE" in part]
    connection = connect()
    try:
        with connection.cursor() as cursor:
            registry = f"{prefix}registry"
            cursor.execute(f"CREATE DATABASE `{registry}`")
            cursor.execute(f"CREATE TABLE `{registry}`.tenants (name VARCHAR(255) PRIMARY KEY, db_name VARCHAR(255) NOT NULL)")
            for position, tenant in enumerate(tenants):
                database = f"{prefix}{tenant}"
                cursor.execute(f"CREATE DATABASE `{database}`")
                cursor.execute(f"USE `{database}`")
                for statement in schema:
                    cursor.execute(statement)
                rows = CONTACTS_PER_TENANT + position  # tenants differ in size
                cursor.executemany(
                    "INSERT INTO contacts (email, name) VALUES (%s, %s)",
                    [(f"c{i}@example.com", f"Contact {i}") for i in range(1, rows + 1)],
                )
                cursor.executemany(
                    "INSERT INTO orders (contact_id, total_cents, status) VALUES (%s, %s, %s)",
                    [(i % rows + 1, i * 100, "new" if i % 3 else "paid") for i in range(1, 2 * rows)],
                )
                cursor.execute(f"INSERT INTO `{registry}`.tenants VALUES (%s, %s)", (tenant, database))
    finally:
        connection.close()
    config_path = workdir / "jobd.toml"
    config_path.write_text(
        "[migrations]\n"
        'folder = "migrations"\n'
        f'registry_url = "mysql+pymysql://root@127.0.0.1:3306/{prefix}registry"\n'
        'registry_query = "SELECT name, db_name FROM tenants ORDER BY name"\n'
        "parallel = 4\n"
        "lock_wait_timeout = 5\n" + extra_config
    )
    return Fleet(prefix, tenants, config_path, folder)


def drop_prefixed(prefix: str) -> None:
    connection = connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW DATABASES")
            for (name,) in cursor.fetchall():
                if name.startswith(prefix):
                    cursor.execute(f"DROP DATABASE `{name}`")
    finally:
        connection.close()


@pytest.fixture
def db_prefix() -> Iterator[str]:
    prefix = f"jobdt_mig_{secrets.token_hex(4)}_"
    try:
        yield prefix
    finally:
        drop_prefixed(prefix)


@pytest.fixture
def fleet(db_prefix: str, tmp_path: Path) -> Fleet:
    """21 tenants on the example schema, their registry, a config and a migrations folder."""
    return build_fleet(db_prefix, 21, tmp_path)


@pytest.fixture
def small_fleet(db_prefix: str, tmp_path: Path) -> Fleet:
    return build_fleet(db_prefix, 4, tmp_path)
