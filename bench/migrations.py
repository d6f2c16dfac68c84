"""Benchmark: parallel per-tenant migrations vs one tenant after another.

Builds N tenant databases on the local MariaDB from examples/tenants (with
realistic row counts), applies the example's 3-file, 6-step migration with
``--parallel`` 1 (sequential), 2, 4, 8, with and without snapshots, and
prints the median wall time of each, the speed-up over sequential and the
cost of snapshots. Every database it creates starts with a random
``jobdb_mig_<hex>_`` prefix and is dropped at the end, even on Ctrl-C.

    python bench/migrations.py --tenants 24 --rows 3000 --runs 3
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import time
from pathlib import Path

import pymysql
from rich.console import Console
from rich.table import Table

from jobd.migrations.fleet import run_migrations
from jobd.migrations.settings import MigrationsSettings, SnapshotMode, StaticTenant

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tenants"
SERVER = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
TABLES = ("contacts", "orders")


def connect() -> pymysql.connections.Connection:
    return pymysql.connect(**SERVER, autocommit=True)


def build_template(cursor: pymysql.cursors.Cursor, template: str, rows: int) -> None:
    """One tenant with ``rows`` contacts and 3×rows orders; every tenant is copied from it."""
    cursor.execute(f"CREATE DATABASE `{template}`")
    cursor.execute(f"USE `{template}`")
    for statement in (EXAMPLE / "schema.sql").read_text().split(";"):
        if "CREATE" in statement:
            cursor.execute(statement)
    batch = 1000
    for start in range(0, rows, batch):
        cursor.executemany(
            "INSERT INTO contacts (email, name) VALUES (%s, %s)",
            [(f"user{i}@example.com", f"Contact {i % 997}") for i in range(start, min(rows, start + batch))],
        )
    for start in range(0, rows * 3, batch):
        cursor.executemany(
            "INSERT INTO orders (contact_id, total_cents, status, note) VALUES (%s, %s, %s, %s)",
            [(i % rows + 1, (i * 37) % 100000, ("new", "paid", "shipped")[i % 3], f"order {i}")
             for i in range(start, min(rows * 3, start + batch))],
        )


def reset_tenants(cursor: pymysql.cursors.Cursor, prefix: str, template: str, count: int) -> None:
    """Every tenant back to the pre-migration template; snapshots of earlier runs dropped."""
    cursor.execute("SHOW DATABASES")
    for (name,) in cursor.fetchall():
        if name.startswith(prefix) and name != template:
            cursor.execute(f"DROP DATABASE `{name}`")
    for index in range(count):
        database = f"{prefix}t{index:03d}"
        cursor.execute(f"CREATE DATABASE `{database}`")
        for table in TABLES:
            cursor.execute(f"CREATE TABLE `{database}`.`{table}` LIKE `{template}`.`{table}`")
            cursor.execute(f"INSERT INTO `{database}`.`{table}` SELECT * FROM `{template}`.`{table}`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", type=int, default=24)
    parser.add_argument("--rows", type=int, default=3000, help="contacts per tenant (orders: 3x)")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration (the median is reported)")
    parser.add_argument("--parallel", default="1,2,4,8", help="comma-separated; 1 is the sequential baseline")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop starting new runs after this")
    args = parser.parse_args(argv)
    levels = [int(value) for value in args.parallel.split(",")]
    if 1 not in levels:
        levels.insert(0, 1)
    prefix = f"jobdb_mig_{secrets.token_hex(4)}_"
    template = f"{prefix}template"
    console = Console()
    settings = MigrationsSettings(
        folder=EXAMPLE / "migrations",
        tenants=[StaticTenant(name=f"t{index:03d}", database=f"{prefix}t{index:03d}") for index in range(args.tenants)],
        tenant_url="mysql+pymysql://root@127.0.0.1:3306/",
    )
    results: dict[tuple[SnapshotMode, int], list[float]] = {}
    connection = connect()
    deadline = time.monotonic() + args.max_seconds
    try:
        with connection.cursor() as cursor:
            console.print(f"building {args.tenants} tenants × ({args.rows} contacts + {args.rows * 3} orders) …")
            build_template(cursor, template, args.rows)
            for _ in range(args.runs):
                for mode in (SnapshotMode.NONE, SnapshotMode.TOUCHED):
                    for parallel in levels:
                        if time.monotonic() > deadline:
                            break
                        reset_tenants(cursor, prefix, template, args.tenants)
                        summary = run_migrations(settings, parallel=parallel, snapshot_mode=mode)
                        if not summary.ok:
                            failed = [outcome for outcome in summary.outcomes if not outcome.ok]
                            console.print(f"[red]run failed:[/] {failed[0].tenant}: {failed[0].error}")
                            return 1
                        results.setdefault((mode, parallel), []).append(summary.seconds)
                        console.print(f"  snapshot={mode.value:<7} parallel={parallel}: {summary.seconds:.2f}s", highlight=False)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SHOW DATABASES")
            for (name,) in cursor.fetchall():
                if name.startswith(prefix):
                    cursor.execute(f"DROP DATABASE `{name}`")
        connection.close()

    table = Table(title=f"{args.tenants} tenants, 6 steps, median of {args.runs} run(s)")
    for column in ("snapshot", "parallel", "median wall (s)", "speed-up", "wall-time cut", "snapshot overhead"):
        table.add_column(column, justify="right")
    for mode in (SnapshotMode.NONE, SnapshotMode.TOUCHED):
        baseline = statistics.median(results[(mode, 1)])
        for parallel in levels:
            if (mode, parallel) not in results:
                continue
            median = statistics.median(results[(mode, parallel)])
            without = results.get((SnapshotMode.NONE, parallel))
            overhead = f"{(median / statistics.median(without) - 1) * 100:+.0f}%" if mode is not SnapshotMode.NONE and without else "-"
            table.add_row(mode.value, "sequential" if parallel == 1 else str(parallel), f"{median:.2f}",
                          f"{baseline / median:.2f}x", f"{(1 - median / baseline) * 100:.0f}%", overhead)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
