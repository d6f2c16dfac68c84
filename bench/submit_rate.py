"""How fast one process submits with ``jobd.submit``, checking intents against the task catalogue or the task code.

A fresh interpreter per round submits N intents one by one (no master
running: each is a validation, a durable INSERT and a wake-up datagram to
nobody) and reports submits per second and the SQL statements it sent per
submit. Two ways of checking an intent, side by side:

* ``catalogue`` — `jobd check` has published the daemon's tasks; the
  process reads the catalogue once and imports no task module, and each
  submit goes through the database driver alone (``jobd.ops.quick_submit``:
  no SQLAlchemy, no config models);
* ``imports`` — no catalogue in the store yet: the process imports the
  daemon's task code once to check intents against it, and then submits
  through the driver as well.

Beside them, two floors:

* ``driver`` inserts the same rows through the database driver alone
  (``store.driver_submit``, the statement `jobd trigger` sends), on a
  connection opened as jobd opens its own (the same pragmas, each INSERT
  committed as it runs), with no check and no wake-up. What ``catalogue``
  costs above it is jobd's own work per submit;
* ``server`` inserts one short row into a two-column table on the same
  kind of connection, each committed as it runs: what the store itself
  takes to make a row durable, whatever the row. No loop of submits that
  are durable when they return goes under it on this machine, jobd's or
  anyone's (on MariaDB with ``innodb_flush_log_at_trx_commit=1``, a redo-log
  write and flush per commit).

Medians over the rounds, the ratio to ``imports``, and microseconds per
submit; and what the first submit costs the application's process: the
wall time from ``import jobd`` to its return, and the unique memory (USS)
it added, everything it loaded included (the config's digest already on
record, as after any earlier `jobd` command; the floors' rows load
SQLAlchemy only to work out the driver's arguments).

    python bench/submit_rate.py [--submits 2000] [--rounds 5] [--store mysql+pymysql://root@127.0.0.1:3306/DB]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TASKS = '''
import jobd

@jobd.task("bench.noop")
def noop(ctx, n: int = 0) -> None:
    pass
'''

SUBMITTER = '''
import json, sqlite3, sqlite3.dbapi2, sys, time
import psutil

process = psutil.Process()
unique_before = process.memory_full_info().uss
began = time.perf_counter()
import jobd

statements = 0


def count(*_args):
    global statements
    statements += 1


_sqlite_connect = sqlite3.connect


def traced_connect(*args, **kwargs):  # every statement a SQLite connection runs, whoever opened it
    connection = _sqlite_connect(*args, **kwargs)
    connection.set_trace_callback(count)
    return connection


sqlite3.connect = sqlite3.dbapi2.connect = traced_connect  # jobd's driver path and SQLAlchemy's

try:
    import pymysql.connections

    _query = pymysql.connections.Connection.query

    def query(self, sql, unbuffered=False):
        count()
        return _query(self, sql, unbuffered)

    pymysql.connections.Connection.query = query
except ImportError:
    pass

config, submits, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == "driver":  # the floor: the same row, inserted through the driver alone
    from jobd.config import load_config
    from jobd.store.driver_submit import SubmitStatements
    from jobd.store.engine import driver_target
    from jobd.store.new_job import NewJob

    driver_statements = SubmitStatements(driver_target(load_config(config).store))

    def submit(n):
        driver_statements.insert(NewJob("bench", "bench.noop", {"n": n}).row(time.time()))

elif mode == "server":  # the server's own floor: one short row into a two-column table, committed
    import importlib

    from jobd.config import load_config
    from jobd.store.driver_sql import open_connection
    from jobd.store.engine import driver_target

    target = driver_target(load_config(config).store)
    cursor = open_connection(target, importlib.import_module(target.driver_module)).cursor()
    key = "id INTEGER PRIMARY KEY" if target.dialect == "sqlite" else "id BIGINT AUTO_INCREMENT PRIMARY KEY"
    cursor.execute(f"CREATE TABLE IF NOT EXISTS bench_floor ({key}, payload VARCHAR(64))")
    floor_insert = f"INSERT INTO bench_floor (payload) VALUES ({target.placeholder})"

    def submit(n):
        cursor.execute(floor_insert, (f'{{"n": {n}}}',))

else:
    def submit(n):
        jobd.submit("bench", "bench.noop", {"n": n}, config=config)

submit(-1)  # warm: config, engine, catalogue or imports
first_submit = time.perf_counter() - began  # the import of jobd, and whatever the first submit loads
first_uss = (process.memory_full_info().uss - unique_before) / 2**20
statements = 0
started = time.perf_counter()
for n in range(submits):
    submit(n)
elapsed = time.perf_counter() - started
print(json.dumps({"rate": submits / elapsed, "statements": statements / submits,
                  "task_module_imported": "bench_tasks" in sys.modules, "sqlalchemy_loaded": "sqlalchemy" in sys.modules,
                  "first_submit": first_submit, "first_uss": first_uss}))
'''


def jobd_command(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "jobd.cli.app", *args, "--config", str(root / "jobd.toml")],
                   check=True, capture_output=True, timeout=120)


def deployment(store: str | None) -> Path:
    root = Path(tempfile.mkdtemp(prefix="jobd-submit-", dir="/tmp"))
    (root / "bench_tasks.py").write_text(TASKS)
    url = store or f"sqlite:///{root / 'jobd.db'}"
    (root / "jobd.toml").write_text(
        f'store = "{url}"\nsocket = "jobd.sock"\npython_path = ["{root}"]\n'
        '[daemons.bench]\nmodules = ["bench_tasks"]\n'
    )
    jobd_command(root, "init")
    return root


def clear(store: str | None, root: Path) -> None:
    """Empty the catalogue and the jobs between rounds (a fresh file on SQLite)."""
    if store is None:
        for name in ("jobd.db", "jobd.db-wal", "jobd.db-shm"):
            (root / name).unlink(missing_ok=True)
        jobd_command(root, "init")
        return
    import sqlalchemy as sa

    engine = sa.create_engine(store)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM jobd_jobs")
        connection.exec_driver_sql("DELETE FROM jobd_task_catalogue")
        connection.exec_driver_sql("DROP TABLE IF EXISTS bench_floor")
    engine.dispose()


def one_round(root: Path, store: str | None, mode: str, submits: int) -> dict[str, float]:
    clear(store, root)
    if mode == "catalogue":
        jobd_command(root, "check")
    completed = subprocess.run([sys.executable, "-c", SUBMITTER, str(root / "jobd.toml"), str(submits), mode],
                               check=True, capture_output=True, text=True, timeout=600, cwd=root,
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--store", help="a MySQL/MariaDB URL of an empty database (default: a SQLite file)")
    options = parser.parse_args()
    root = deployment(options.store)
    modes = ("imports", "catalogue", "driver", "server")
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in modes}
    try:
        for round_number in range(options.rounds):
            for mode in modes if round_number % 2 == 0 else tuple(reversed(modes)):
                results[mode].append(one_round(root, options.store, mode, options.submits))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    reference = statistics.median(r["rate"] for r in results["imports"])
    print(f"jobd.submit, one process, {options.submits} submits x {options.rounds} rounds, "
          f"store {'SQLite file' if options.store is None else 'MySQL/MariaDB'}; medians\n")
    print("| check by  | submits/s | x imports | µs/submit | statements/submit | first submit ms | its USS MiB | task module imported | SQLAlchemy loaded |")
    print("|-----------|-----------|-----------|-----------|-------------------|-----------------|-------------|----------------------|-------------------|")
    for mode in modes:
        rate = statistics.median(r["rate"] for r in results[mode])
        statements = statistics.median(r["statements"] for r in results[mode])
        imported = {bool(r["task_module_imported"]) for r in results[mode]}
        loaded = {bool(r["sqlalchemy_loaded"]) for r in results[mode]}
        first = statistics.median(r["first_submit"] for r in results[mode]) * 1000
        uss = statistics.median(r["first_uss"] for r in results[mode])
        print(f"| {mode:<9} | {rate:>9,.0f} | {rate / reference:>9.2f} | {1e6 / rate:>9.1f} | {statements:>17.2f} "
              f"| {first:>15.0f} | {uss:>11.1f} | {str(sorted(imported)):<20} | {str(sorted(loaded)):<17} |")
    floor = statistics.median(r["rate"] for r in results["driver"])
    catalogue = statistics.median(r["rate"] for r in results["catalogue"])
    print(f"\njobd.submit (catalogue) spends {1e6 / catalogue - 1e6 / floor:.1f} µs per submit above the driver's "
          f"own INSERT ({1e6 / floor:.1f} µs): {catalogue / floor:.2f}x the floor's rate")
    server = statistics.median(r["rate"] for r in results["server"])
    print(f"The server alone commits {server:,.0f} one-row INSERTs/s ({1e6 / server:.1f} µs each) into a two-column "
          f"table: no loop of durable submits on this store goes faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
