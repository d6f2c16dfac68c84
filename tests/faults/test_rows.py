"""Rows other applications write with their own SQL: refused when invalid, visible when waiting, never fatal.

Each bad row is inserted with raw SQL beside normal jobs, on SQLite and on
MariaDB; a real master runs them; the normal jobs all run, each bad row ends
``dead`` with a readable reason, and the master stays up across a restart.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from jobd.states import JobState
from jobd.store import NewJob, SCHEMA_VERSION, Store, open_store

from support import Deployment, wait_until

from .rows_sql import downgrade_to_v3, execute, insert_job

DEEP_ARGS_SQL = "'" + '{"a":' + "[" * 5000 + "]" * 5000 + "}'"
NOT_UTF8_ARGS_SQL = "CAST(X'7B226E223A22FF227D' AS TEXT)"  # {"n":"\xff"}: SQLite stores the bytes as given


def _refused(store: Store, **columns: object) -> bool:
    try:
        insert_job(store, "main", "t.record", **columns)
    except sa.exc.DBAPIError as error:
        assert "jobd_jobs_state" in str(error)
        return True
    return False


def test_a_row_with_a_state_that_is_not_a_jobd_state_is_refused_by_the_database(store: Store) -> None:
    assert _refused(store, state="weird")
    for state in JobState:
        insert_job(store, "main", "t.record", state=str(state))  # every jobd state is accepted


def test_an_upgraded_store_keeps_its_rows_even_in_unknown_states_and_then_refuses_them(store_url: str) -> None:
    store = open_store(store_url)
    store.initialise()
    downgrade_to_v3(store)
    store.dispose()
    old = open_store(store_url)
    assert old.version() == 3
    kept = [insert_job(old, "main", "t.record", "'{\"n\": 1}'"), insert_job(old, "main", "t.record", state="weird")]
    old.jobs.insert(NewJob("main", "t.record", {"n": 2}, run_at=4e9))
    assert old.initialise() == SCHEMA_VERSION == 8
    assert old.version() == 8
    by_id = {job.id: job for job in old.jobs.list(limit=10)}
    assert len(by_id) == 3 and set(kept) <= set(by_id)
    assert str(by_id[kept[1]].state) == "weird" and by_id[kept[0]].args == {"n": 1}
    assert [job.id for job in old.jobs.list(states=["weird"])] == [kept[1]]
    assert _refused(old, state="bogus")
    assert old.initialise() == 8  # idempotent
    if old.engine.dialect.name == "sqlite":  # the rebuilt table has every index, the v4 and v7 ones too
        with old.engine.connect() as connection:
            names = set(connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobd_jobs'"
            ).scalars())
        assert {"jobd_jobs_ready", "jobd_jobs_waiting", "jobd_jobs_owner", "jobd_jobs_state_finished",
                "jobd_jobs_undated", "jobd_jobs_batch"} <= names
    old.dispose()


def _bad_rows(store: Store) -> dict[str, int]:
    """One row of each kind that used to crash or wedge a master, by kind."""
    rows = {
        "deep args": insert_job(store, "main", "t.record", DEEP_ARGS_SQL),
        "attempts at the limit": insert_job(store, "main", "t.record", "'{\"n\": 7}'", attempts=2147483647),
        "NaN in args": insert_job(store, "main", "t.record", "'{\"n\": NaN}'"),
    }
    if store.engine.dialect.name == "sqlite":  # MariaDB refuses these on INSERT
        rows["args not UTF-8"] = insert_job(store, "main", "t.record", NOT_UTF8_ARGS_SQL)
        rows["text in a number column"] = insert_job(store, "main", "t.record", "'{}'", priority="high")
    return rows


def _undated_rows(store: Store) -> list[int]:
    """Scheduled and retrying rows without run_at: due now (documented in docs/faults.md)."""
    return [
        insert_job(store, "main", "t.record", "'{\"n\": 8}'", state="scheduled"),
        insert_job(store, "other", "t.record", "'{\"n\": 9}'", state="retrying", attempts=1),
    ]


REASONS = {
    "deep args": "nest deeper",
    "attempts at the limit": "at the counter's limit",
    "text in a number column": "priority is 'high', not an integer",
    "args not UTF-8": "not valid UTF-8",
    "NaN in args": "args are not valid JSON (NaN is not JSON)",
}


def _stop(master: "os.PathLike[str] | object") -> None:
    process = master  # a Popen
    os.kill(process.pid, signal.SIGTERM)  # type: ignore[attr-defined]
    process.wait(30)  # type: ignore[attr-defined]


def test_bad_rows_end_dead_with_a_reason_while_normal_jobs_run_and_the_master_survives_restarts(
    store_url: str, deployment_factory: Callable[[str], Deployment],
) -> None:
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 2}, "other": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    store = deployment.store
    bad = _bad_rows(store)
    undated = _undated_rows(store)
    normal = [store.jobs.insert(NewJob(daemon, "t.record", {"n": n})) for n in range(10) for daemon in ("main", "other")]

    master = deployment.start_master()
    deployment.wait_all_final(normal + undated + list(bad.values()), timeout=40)
    for job_id in normal + undated:
        assert store.jobs.get(job_id).state is JobState.SUCCEEDED, store.jobs.get(job_id)
    for kind, job_id in bad.items():
        job = store.jobs.get(job_id)
        assert job.state is JobState.DEAD, (kind, job)
        assert REASONS[kind] in (job.error or ""), (kind, job.error)
    ran = {int(line) for line in deployment.lines("runs.log")}
    assert ran == set(normal + undated), "a bad row ran, or a normal job did not"
    assert master.poll() is None and deployment.answers()

    # The same rows again while it runs, then a restart with them waiting: it stays up and they end dead.
    again = _bad_rows(store)
    wait_until(lambda: all(store.jobs.get(i).state is JobState.DEAD for i in again.values()), timeout=20)
    _stop(master)
    waiting = _bad_rows(store)
    later = [store.jobs.insert(NewJob("other", "t.record", {"n": 99}))]
    master = deployment.start_master()
    deployment.wait_all_final(later + list(waiting.values()), timeout=30)
    assert store.jobs.get(later[0]).state is JobState.SUCCEEDED
    assert all(store.jobs.get(i).state is JobState.DEAD for i in waiting.values())
    assert master.poll() is None and deployment.answers()
    _stop(master)
    assert master.returncode == 0


def _old_rows_in_unknown_states(deployment: Deployment) -> tuple[int, int]:
    """A row in state 'bogus' and one in 'weird', written before schema v4 refused them."""
    store = deployment.store
    downgrade_to_v3(store)
    bogus = insert_job(store, "main", "t.record", state="bogus")
    weird = insert_job(store, "main", "t.record", DEEP_ARGS_SQL, state="weird")
    store.initialise()
    return bogus, weird


def test_jobs_in_unknown_states_are_listed_and_shown_without_a_traceback(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    bogus, weird = _old_rows_in_unknown_states(deployment)

    listed = deployment.jobd("jobs", "--state", "weird", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(job["id"], job["state"]) for job in json.loads(listed.stdout)] == [(weird, "weird")]
    table = deployment.jobd("jobs")
    assert table.returncode == 0 and "Traceback" not in table.stderr, table.stderr
    assert "bogus" in table.stdout and "weird" in table.stdout
    detail = deployment.jobd("job", str(bogus))
    assert detail.returncode == 0 and "Traceback" not in detail.stderr, detail.stderr
    assert "bogus" in detail.stdout
    as_json = deployment.jobd("job", str(weird), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["state"] == "weird"
    cancel = deployment.jobd("cancel", str(bogus))
    assert "Traceback" not in cancel.stderr and cancel.returncode != 0
    status = deployment.jobd("status")
    assert status.returncode == 0, status.stderr
    assert "1 job(s) in state 'bogus', not a jobd state" in status.stdout


def test_a_daemon_no_master_runs_shows_its_waiting_jobs_in_status_and_top(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    for _ in range(12):
        insert_job(deployment.store, "reports", "reports.build")
    insert_job(deployment.store, "reports", "reports.build", state="scheduled", run_at=4e9)
    expected = "reports: 12 queued, 1 scheduled, no master runs this daemon"

    stopped = deployment.jobd("status")  # no master at all: from the store
    assert expected in stopped.stdout, stopped.stdout
    master = deployment.start_master()
    human = deployment.jobd("status")
    assert human.returncode == 0 and expected in " ".join(human.stdout.split()), human.stdout
    report = json.loads(deployment.jobd("status", "--json").stdout)
    assert [(entry["daemon"], entry["queued"], entry["scheduled"]) for entry in report["unserved"]] == [("reports", 12, 1)]
    top = deployment.jobd("top", "--once")
    assert top.returncode == 0 and expected in " ".join(top.stdout.split()), top.stdout + top.stderr
    assert "main" not in {entry["daemon"] for entry in report["unserved"]}
    _stop(master)


def _refuse(constant: str) -> None:
    raise AssertionError(f"{constant} in a JSON answer")


def test_a_row_holding_infinity_or_nan_is_shown_as_strict_json(deployment: Deployment) -> None:
    """SQLite keeps 9e999 as infinity (such a job is never due), and a row's JSON may hold NaN or Infinity,
    which Python reads and JSON has not: no JSON answer may hold them."""
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    store = deployment.store
    waiting = insert_job(store, "main", "t.record", "'{\"n\": NaN}'", state="scheduled", run_at=float("inf"))
    ended = insert_job(store, "main", "t.record", "'{}'", state="succeeded", result='{"x": Infinity}')
    for job_id in (waiting, ended):
        shown = deployment.jobd("job", str(job_id), "--json")
        assert shown.returncode == 0, shown.stderr
        job = json.loads(shown.stdout, parse_constant=_refuse)
        assert job["id"] == job_id
    listing = deployment.jobd("jobs", "--json")
    assert listing.returncode == 0, listing.stderr
    json.loads(listing.stdout, parse_constant=_refuse)
    shown = json.loads(deployment.jobd("job", str(waiting), "--json").stdout)
    assert shown["run_at"] is None and "run_at is inf, not a finite time" in shown["row_problem"]
