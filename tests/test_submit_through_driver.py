"""``jobd.submit`` and ``jobd.get_job`` from an application go through the database driver alone.

An application's processes load only the driver and jobd's submit code, write
exactly the row the full submit writes, and keep one connection per thread,
never sharing one with a forked child. What only the full submit does (the
config's models given, a caller's connection) still works the same; a daemon
with no published catalogue has its intents checked against its task code,
imported by the submitting process, as the full submit would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import jobd
from jobd.config import load_config
from jobd.config_digest import config_digest
from jobd.errors import StoreUnavailable, UnknownJob
from support import Deployment

HEAVY = ("sqlalchemy", "pydantic", "typer", "rich")

APPLICATION = """
import json, os, sys, threading
import jobd

config, threads, per_thread = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ids = [[jobd.submit("main", "t.record", {"n": 0}, config=config), 0]]  # [job id, the n it was submitted with]

def submit_some(first):
    for n in range(first, first + per_thread):
        ids.append([jobd.submit("main", "t.record", {"n": n}, config=config), n])

workers = [threading.Thread(target=submit_some, args=(1 + 1000 * index,)) for index in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()

reader, writer = os.pipe()
child = os.fork()
if child == 0:  # a forked child (a web server's worker, say) submits while its parent does, on a connection of its own
    os.close(reader)
    try:
        os.write(writer, json.dumps([[jobd.submit("main", "t.record", {"n": n}, config=config), n] for n in range(-1, -51, -1)]).encode())
        os._exit(0)
    except BaseException as error:
        os.write(writer, json.dumps(repr(error)).encode())
        os._exit(1)
os.close(writer)
ids += [[jobd.submit("main", "t.record", {"n": n}, config=config), n] for n in range(100_000, 100_050)]
_, status = os.waitpid(child, 0)
from_child = json.loads(os.read(reader, 1 << 16).decode())
job = jobd.get_job(ids[0][0], config=config)
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {heavy!r})
print(json.dumps({"ids": ids, "child": from_child, "child_status": status, "heavy": heavy, "first": [job.state, job.args]}))
""".replace("{heavy!r}", repr(set(HEAVY)))


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Config digests in a folder of this test's (the application processes inherit the environment)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def published(deployment_factory: Callable[[str], Deployment], store_url: str) -> Deployment:
    """A deployment with its store made, daemon main's task catalogue published, and its config's digest on record.

    Daemon ``other`` has no catalogue: as on a store no master has started on since it was made.
    """
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 1}, "other": {"workers": 1}})
    deployment.jobd("init", check=True)
    deployment.jobd("check", check=True)
    with deployment.store.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM jobd_task_catalogue WHERE daemon = 'other'")
    config_digest(deployment.config_path)
    return deployment


def run_application(deployment: Deployment, threads: int, per_thread: int) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", APPLICATION, str(deployment.config_path), str(threads), str(per_thread)],
        capture_output=True, text=True, timeout=120, check=False, cwd=deployment.root,
    )
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def test_an_application_submits_from_threads_and_a_forked_child_loading_neither_sqlalchemy_nor_pydantic(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path,
) -> None:
    deployment = published(deployment_factory, store_url)
    answer = run_application(deployment, threads=4, per_thread=25)

    assert answer["heavy"] == []
    assert answer["first"] == ["queued", {"n": 0}]
    assert answer["child_status"] == 0, answer["child"]
    submitted = answer["ids"] + answer["child"]
    assert len(submitted) == 1 + 4 * 25 + 50 + 50 == len({job_id for job_id, _ in submitted})
    assert sum(deployment.store.jobs.counts()["main"].values()) == len(submitted)
    # Each id is the job its submitter wrote: no thread or process read another's answer on a shared connection.
    assert all(deployment.store.jobs.get(job_id).args == {"n": n} for job_id, n in submitted)


def test_the_driver_writes_the_row_the_full_submit_writes(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path,
) -> None:
    deployment = published(deployment_factory, store_url)
    intent: dict[str, Any] = {"priority": 3, "max_attempts": 7, "run_at": 4102444800.0}
    through_driver = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path, **intent)
    full = jobd.submit("main", "t.record", {"n": 1}, config=load_config(deployment.config_path), **intent)  # models given: the full path
    rows = deployment.store.jobs.get(through_driver), deployment.store.jobs.get(full)

    def kept(job: Any) -> dict[str, Any]:
        return {key: value for key, value in vars(job).items() if key not in {"id", "created_at", "updated_at"}}

    assert kept(rows[0]) == kept(rows[1])
    # Read back the way an application does: through the driver, and through the full path, alike.
    assert jobd.get_job(through_driver, config=deployment.config_path) == rows[0]
    assert jobd.get_job(through_driver, config=load_config(deployment.config_path)) == rows[0]
    with pytest.raises(UnknownJob):
        jobd.get_job(full + 1000, config=deployment.config_path)
    assert (rows[0].state, rows[0].priority, rows[0].max_attempts, rows[0].run_at) == ("scheduled", 3, 7, 4102444800.0)


def test_what_the_full_submit_does_alone_still_works(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path,
) -> None:
    deployment = published(deployment_factory, store_url)
    config = deployment.config_path
    keyed = jobd.submit("main", "t.record", {"n": 1}, config=config, unique_key="nightly", reuse_cached=False)
    assert jobd.submit("main", "t.record", {"n": 2}, config=load_config(config), unique_key="nightly") == keyed  # the full path

    assert jobd.submit("other", "t.record", {"n": 3}, config=config) > 0  # no catalogue: its task code is imported to check
    assert sum(sum(states.values()) for states in deployment.store.jobs.counts().values()) == 2


def test_a_store_never_initialised_is_reported_as_by_the_full_submit(deployment: Deployment, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1}})
    with pytest.raises(StoreUnavailable, match="jobd init"):
        jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    assert not (deployment.root / "jobd.db").exists() or deployment.store.version() is None


UNIQUE_RACE = """
import json, sys, threading
import jobd

config, key = sys.argv[1], sys.argv[2]
ids, start = [], threading.Barrier(8)

def submit():
    start.wait()
    ids.append(jobd.submit("main", "t.record", {"n": 1}, config=config, unique_key=key))

threads = [threading.Thread(target=submit) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"ids": ids, "sqlalchemy": "sqlalchemy" in sys.modules}))
"""


def test_submits_racing_with_one_unique_key_all_get_the_one_job_that_holds_it(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path,
) -> None:
    deployment = published(deployment_factory, store_url)
    for round_ in range(3):
        completed = subprocess.run(
            [sys.executable, "-c", UNIQUE_RACE, str(deployment.config_path), f"nightly-{round_}"],
            capture_output=True, text=True, timeout=120, check=False, cwd=deployment.root,
        )
        assert completed.returncode == 0, completed.stderr
        answer = json.loads(completed.stdout.strip().splitlines()[-1])
        assert len(answer["ids"]) == 8 and len(set(answer["ids"])) == 1, answer
        assert not answer["sqlalchemy"]
    assert sum(deployment.store.jobs.counts()["main"].values()) == 3
    # A finished job gives its key up: the next submit with it is a new job.
    (first,) = deployment.store.jobs.claim("main", 1, "m1", now=None)
    from jobd.store.jobs import Outcome
    from jobd.states import JobState

    deployment.store.jobs.apply_outcomes("m1", [Outcome(first.id, first.attempts, JobState.SUCCEEDED, {"result": None})])
    assert jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path, unique_key=first.unique_key) != first.id


@pytest.mark.mysql
def test_a_kept_connection_is_opened_again_once_it_is_old_so_an_idle_application_never_meets_a_closed_one(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, mariadb: dict[str, Any], own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """MySQL closes a connection idle past its ``wait_timeout``; here the server kills the application's
    connections instead of waiting hours. Kept past its recycle age, the submitter's connection is
    opened again before the next submit, which succeeds; younger, the dead connection fails that submit
    with jobd's ``StoreUnavailable`` (a job maybe written is never written twice)."""
    import pymysql

    from jobd.ops.quick_submit import DriverSubmitter
    from jobd.store.driver_submit import SubmitStatements

    deployment = published(deployment_factory, mariadb_url)
    deployment.store.dispose()
    database = mariadb_url.rsplit("/", 1)[1]

    def server_closes_the_applications_connections() -> None:
        admin = pymysql.connect(**mariadb)
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id != CONNECTION_ID()", (database,))
                for (connection_id,) in cursor.fetchall():
                    cursor.execute(f"KILL {int(connection_id)}")
        finally:
            admin.close()

    submitter = DriverSubmitter.of(config_digest(deployment.config_path))
    assert submitter is not None
    first = submitter.submit("main", "t.record", {"n": 1})
    assert first is not None
    server_closes_the_applications_connections()
    with pytest.raises(StoreUnavailable, match="the job was not submitted"):
        submitter.submit("main", "t.record", {"n": 2})
    assert submitter.submit("main", "t.record", {"n": 3}) is not None  # the dead connection was dropped

    monkeypatch.setattr(SubmitStatements, "RECYCLE_SECONDS", 0.0)  # every kept connection is old from now on
    server_closes_the_applications_connections()
    assert submitter.submit("main", "t.record", {"n": 4}) is not None
    submitter.close()


BULK = """
import json, sys
import jobd

config = sys.argv[1]
items = [{"n": n} for n in range(1200)]
keys = [f"k{n % 7}" if n % 10 == 0 else None for n in range(1200)]  # keys given again later in the bulk
result = jobd.submit_many("main", "t.record", items, unique_keys=keys, config=config, priority=2)
heavy = sorted(name for name in sys.modules if name.split(".")[0] in {"sqlalchemy", "pydantic"})
print(json.dumps({"ids": result.ids, "duplicates": [[d.index, d.unique_key, d.job_id] for d in result.duplicates],
                  "heavy": heavy}))
"""


def test_an_applications_bulk_submit_goes_through_the_driver_and_answers_as_the_full_path(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path,
) -> None:
    deployment = published(deployment_factory, store_url)
    completed = subprocess.run(
        [sys.executable, "-c", BULK, str(deployment.config_path)],
        capture_output=True, text=True, timeout=120, check=False, cwd=deployment.root,
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == []
    ids = answer["ids"]
    assert len(ids) == 1200 and len(answer["duplicates"]) == 120 - 7
    for index in range(0, 1200, 10):  # each key's first item wrote the job every later one reports
        assert ids[index] == ids[index % 70]
    assert all(deployment.store.jobs.get(ids[n]).args == {"n": n} for n in range(0, 1200, 37) if n % 10 or n < 70)

    # The same bulk through the full path (the config's models given): every keyed item is now a duplicate
    # of the same job, and the rest are new.
    again = jobd.submit_many(
        "main", "t.record", [{"n": n} for n in range(1200)], unique_keys=[f"k{n % 7}" if n % 10 == 0 else None for n in range(1200)],
        config=load_config(deployment.config_path), priority=2,
    )
    assert [again.ids[index] for index in range(0, 1200, 10)] == [ids[index] for index in range(0, 1200, 10)]
    assert sum(sum(states.values()) for states in deployment.store.jobs.counts().values()) == 2 * (1200 - 120) + 7


def test_a_connection_past_its_recycle_age_is_kept_until_its_transaction_ends(
    deployment_factory: Callable[[str], Deployment], store_url: str, own_cache: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bulk's statements all run in one transaction on one connection, however old it grows meanwhile."""
    import time

    from jobd.store.driver_submit import SubmitStatements
    from jobd.store.engine import driver_target
    from jobd.store.new_job import NewJob

    deployment = published(deployment_factory, store_url)
    monkeypatch.setattr(SubmitStatements, "RECYCLE_SECONDS", 0.0)  # every connection is old at once
    statements = SubmitStatements(driver_target(deployment.store_url))
    try:
        with statements.transaction():
            opened = statements.connection
            for n in range(3):
                statements.insert(NewJob("main", "t.record", {"n": n}).row(time.time()))
            assert statements.connection is opened
        assert statements.connection is not opened  # given up once the transaction ended
    finally:
        statements.close()
    assert sum(deployment.store.jobs.counts()["main"].values()) == 3
