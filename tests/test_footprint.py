"""A worker holds the task protocol and its task code, not the master's or the CLI's libraries; the master holds no CLI library, no SQLAlchemy, no pydantic.

jobd runs beside the application it serves; every module a worker imports
is memory taken from that application, once per worker. A real master with
2 workers runs a task that reports its own process's module set; each must
be free of the heavy libraries the master and the CLI use, and must not grow
past the agreed list below (what a bare interpreter of the same environment
imports is always allowed: site hooks differ between installs). Growing it
is a decision: measure with ``bench/footprint.py`` and add the names here.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import jobd
from jobd.checked_config import check_config, encode_checked
from jobd.store import open_store
from jobd.store.handover import handover_for

from support import Deployment

HEAVY = {"sqlalchemy", "pydantic", "pydantic_core", "rich", "typer", "click", "apscheduler", "pymemcache", "sqlglot", "starlette"}

#: Top-level modules a worker may hold beyond a bare interpreter's (Python 3.11): jobd, its task
#: module, the standard library pieces of multiprocessing, logging, json, inspect (task
#: signatures), sqlite3 (the worker's own store statements), gc (the fork server's freeze) and pwd
#: (a shell task's ``user``).
AGREED = {
    "__mp_main__", "_ast", "_bisect", "_blake2", "_bz2", "_compat_pickle", "_compression", "_contextvars", "_ctypes",
    "_datetime", "_hashlib", "_heapq", "_json", "_locale", "_lzma", "_multiprocessing", "_opcode", "_pickle",
    "_posixshmem", "_posixsubprocess", "_random", "_sha512", "_socket", "_sqlite3", "_string", "_struct", "_typing",
    "_weakrefset", "array", "ast", "atexit", "bisect", "bz2", "contextvars", "copy", "ctypes", "dataclasses",
    "datetime", "dis", "fcntl", "hashlib", "heapq", "inspect", "json", "linecache", "locale", "logging", "lzma",
    "math", "mmap", "multiprocessing", "opcode", "pickle", "random", "runpy", "select", "selectors", "shutil",
    "signal", "socket", "sqlite3", "string", "struct", "subprocess", "tempfile", "textwrap", "threading", "token",
    "tokenize", "traceback", "typing", "weakref", "zlib", "gc", "pwd",
    "jobd", "footprint_tasks",
}


def bare_interpreter_modules() -> set[str]:
    shown = subprocess.run(
        [sys.executable, "-c", "import sys; print(sorted({name.partition('.')[0] for name in sys.modules}))"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return set(ast.literal_eval(shown.stdout))


def modules_of_each_worker(deployment: Deployment, workers: int) -> dict[int, set[str]]:
    """Run the reporting task until every worker has answered once (each job pauses, so both take some)."""
    seen: dict[int, set[str]] = {}
    for _ in range(10):
        ids = [
            jobd.submit("main", "footprint.modules", {"pause": 0.05}, config=str(deployment.config_path))
            for _ in range(4 * workers)
        ]
        deployment.wait_all_final(ids)
        for job_id in ids:
            job = deployment.store.jobs.get(job_id)
            assert job.state == "succeeded", (job.state, job.error)
            seen[job.result["pid"]] = set(job.result["modules"])
        if len(seen) >= workers:
            return seen
    raise AssertionError(f"only {len(seen)} of {workers} workers ran a job")


@pytest.mark.parametrize("shell", [
    {},
    # A worker is given its daemon's shell tasks' specs: plain dataclasses, so a cron-like daemon's workers load no pydantic.
    {"shell": {"tidy": {"command": "true", "timeout": "1m"}}},
], ids=["task-code-only", "with-shell-tasks"])
def test_each_worker_holds_only_the_agreed_modules_and_none_of_the_heavy_libraries(
    deployment: Deployment, shell: dict[str, Any],
) -> None:
    deployment.write_config({"main": {"workers": 2, "modules": ["footprint_tasks"], **shell}})
    deployment.start_master()
    allowed = AGREED | bare_interpreter_modules()
    for pid, modules in modules_of_each_worker(deployment, 2).items():
        assert not modules & HEAVY, f"worker {pid} imported {sorted(modules & HEAVY)}"
        assert not modules - allowed, (
            f"worker {pid} imported modules beyond the agreed list: {sorted(modules - allowed)} "
            "(measure with bench/footprint.py; if they are worth it, add them to AGREED)"
        )


#: What the command line needs and a master never does: its libraries, and those a master loads only when configured to.
CLI_ONLY = {"typer", "click", "rich", "pygments", "shellingham", "sqlglot", "prometheus_client"}


#: A config using every section a master holds: daemons with rate limits and a shell task, migrations, a schedule.
EVERY_SECTION = """
store = "sqlite:///jobd.db"
[daemons.main]
modules = ["footprint_tasks"]
timeout = "30s"
rate_limit = "50/s"
[daemons.main.shell.tidy]
command = "true"
timeout = "1m"
[migrations]
folder = "migrations"
tenants = [{ name = "acme", database = "t_acme" }]
tenant_url = "mysql+pymysql://root@127.0.0.1:3306/"
[schedules.entries.nightly]
daemon = "main"
shell = { command = "echo nightly" }
cron = "0 3 * * *"
"""


def test_the_master_s_entry_point_holds_none_of_the_command_line_s_libraries_nor_sqlalchemy_nor_pydantic_nor_the_workers_module(
    tmp_path: Path,
) -> None:
    from support import FIXTURES

    config_path = tmp_path / "jobd.toml"
    config_path.write_text(f"python_path = [{str(FIXTURES)!r}]\n" + EVERY_SECTION)
    checked = check_config(config_path)  # as `jobd start` does (pydantic, task code) before it becomes the master
    assert checked.config.migrations is not None and checked.schedule and checked.inventory["main"]
    url = checked.config.store
    store = open_store(url)
    store.initialise()
    store.dispose()
    shown = subprocess.run(
        [sys.executable, "-c",
         "import sys, jobd.ops.master_main, jobd.master.core; "
         "from jobd.checked_config import decode_checked; checked = decode_checked(sys.argv[2]); "
         "assert checked.config.daemons['main'].rate_limits().daemon is not None; "
         "from jobd.store.handover import decode_handover; from jobd.store.store_core import open_driver_store; "
         "handed = decode_handover(sys.argv[1]); store = open_driver_store(handed.target, handed.url); "
         "store.require_schema(); store.jobs.claim('main', 5, 'owner'); store.masters.all(); "
         "print(sorted({name.partition('.')[0] for name in sys.modules}), 'jobd.cli' in sys.modules, "
         "'jobd.workers.worker' in sys.modules)",
         handover_for(url).encode(), encode_checked(checked)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    modules, cli, worker = shown.stdout.rsplit(" ", 2)
    loaded = set(ast.literal_eval(modules.strip()))
    assert not loaded & CLI_ONLY
    assert "sqlalchemy" not in loaded, "the master reaches its store through the driver alone"
    assert not loaded & {"pydantic", "pydantic_core"}, "the master is handed its config checked"
    assert cli.strip() == "False"
    assert worker.strip() == "False", "the worker's own module is the fork server's to import, not the master's"


@pytest.mark.parametrize("schedule, loaded", [
    ("", False),
    ('[schedules.entries.nightly]\ndaemon = "main"\ntask = "footprint.modules"\ncron = "0 3 * * *"\n', True),
], ids=["no-schedule", "a-cron-entry"])
def test_a_master_loads_apscheduler_only_for_a_schedule_that_has_entries(tmp_path: Path, schedule: str, loaded: bool) -> None:
    """APScheduler's triggers import asyncio and ``importlib.metadata``: 4 MiB a master with no schedule has no use for."""
    from support import FIXTURES

    config_path = tmp_path / "jobd.toml"
    config_path.write_text(f'python_path = [{str(FIXTURES)!r}]\n[daemons.main]\nmodules = ["footprint_tasks"]\n{schedule}')
    shown = subprocess.run(
        [sys.executable, "-c",
         "import sys, jobd.ops.master_main, jobd.master.core; from jobd.checked_config import decode_checked; "
         "checked = decode_checked(sys.argv[1]); print(len(checked.schedule), 'apscheduler' in sys.modules, 'asyncio' in sys.modules)",
         encode_checked(check_config(config_path))],
        capture_output=True, text=True, check=True, timeout=60,
    )
    entries, apscheduler, asyncio = shown.stdout.split()
    assert (int(entries) > 0, apscheduler, asyncio) == (loaded, str(loaded), str(loaded))


def mapped(pid: int | str, package: str) -> list[str]:
    """``package``'s compiled modules mapped into process ``pid`` (present once it imported the package)."""
    lines = (Path("/proc") / str(pid) / "maps").read_text().splitlines()
    return sorted({line.split()[-1] for line in lines if f"/{package}/" in line})


def test_a_running_master_never_loads_sqlalchemy_nor_pydantic_even_across_a_reload(deployment: Deployment) -> None:
    import pydantic  # noqa: F401  (so that this process shows the check can see it)

    for package in ("sqlalchemy", "pydantic_core"):
        assert mapped("self", package), f"this check needs {package}'s compiled modules (the wheels have them)"
    deployment.write_config({"main": {"workers": 1, "modules": ["footprint_tasks"]}})
    schedules = deployment.root / "schedules"
    schedules.mkdir()
    (schedules / "main.toml").write_text('[entries.often]\ndaemon = "main"\ntask = "footprint.modules"\nevery = "1h"\n')
    process = deployment.start_master()
    ids = [jobd.submit("main", "footprint.modules", {"pause": 0.01}, config=str(deployment.config_path)) for _ in range(3)]
    deployment.wait_all_final(ids)
    assert {deployment.store.jobs.get(job_id).state for job_id in ids} == {"succeeded"}
    for command in (("status", "--json"), ("jobs", "-n", "5"), ("status", "main"), ("schedules",)):  # answered by the master
        deployment.jobd(*command, check=True)
    (schedules / "main.toml").write_text('[entries.hourly]\ndaemon = "main"\ntask = "footprint.modules"\ncron = "0 * * * *"\n')
    reloaded = deployment.jobd("reload", check=True)
    assert "hourly" in deployment.jobd("schedules", check=True).stdout, reloaded.stdout
    assert mapped(process.pid, "sqlalchemy") == []
    assert mapped(process.pid, "pydantic_core") == [], "the master is handed its config checked, at start and on reload"


def test_jobd_start_foreground_becomes_the_master_in_its_own_entry_point_keeping_its_pid(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": ["footprint_tasks"]}})
    process = deployment.start_master()
    assert deployment.status()["master"]["pid"] == process.pid, "the process systemd or the caller started is the master"
    command = (Path("/proc") / str(process.pid) / "cmdline").read_bytes().split(b"\0")
    assert b"jobd.ops.master_main" in command and b"jobd.cli.app" not in command
