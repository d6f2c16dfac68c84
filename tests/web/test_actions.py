"""The dashboard's actions over the HTTP API: jobs (delete, bulk on dead jobs), daemons, schedule entries,
the jobs list's time filter and the tenant migrations report — against a real master and `jobd web`."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobd.states import JobState
from jobd.store import NewJob
from support import Deployment, wait_until

from .webserver import WebProcess

READ = "read-" + secrets.token_hex(12)
ADMIN = "admin-" + secrets.token_hex(12)
HOUR = 3600.0


def _jobs_table(deployment: Deployment) -> list[dict[str, Any]]:
    table = deployment.store.jobs.table
    with deployment.store.engine.connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(table).order_by(table.c.id)).mappings()]


def _make_dead(deployment: Deployment, job_id: int, created_at: float) -> None:
    """A dead job as a failed run leaves it (the test writes the row: nothing runs on the parked daemon)."""
    jobs = deployment.store.jobs.table
    with deployment.store.engine.begin() as connection:
        connection.execute(jobs.update().where(jobs.c.id == job_id).values(
            state=str(JobState.DEAD), attempts=1, run_at=None, finished_at=created_at + 1, created_at=created_at, error="boom"))


def _write_schedule(deployment: Deployment) -> None:
    folder = deployment.root / "schedules"
    folder.mkdir(exist_ok=True)
    (folder / "main.toml").write_text('[entries.nightly]\ndaemon = "main"\ntask = "t.record"\ncron = "0 3 * * *"\nargs = { n = 5 }\n')


def _check_refused(server: WebProcess, deployment: Deployment, cases: list[tuple[str, str, str, dict[str, Any], int]]) -> None:
    before = _jobs_table(deployment)
    for what, method, path, options, expected in cases:
        answer = server.request(method, path, **options)
        assert answer.status == expected, f"{what}: {answer.status} {answer.body[:300]!r}"
        assert answer.headers["content-type"].startswith("application/json"), what
        assert answer.data["status"] == expected and answer.data["message"], what
        assert _jobs_table(deployment) == before, f"{what} changed the store"


@pytest.fixture
def acting(deployment_factory: Callable[[str], Deployment], store_url: str) -> Iterator[tuple[Deployment, WebProcess]]:
    """A master with a working daemon and a parked one (no workers), a schedule entry, and `jobd web` with tokens."""
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 1}, "parked": {"workers": 0}}, web={"read_token": READ, "admin_token": ADMIN})
    _write_schedule(deployment)
    deployment.start_master()
    server = WebProcess(deployment).start()
    try:
        yield deployment, server
    finally:
        server.stop()


def test_bulk_retry_and_delete_take_only_the_dead_jobs_the_filter_names_and_say_how_many(acting: tuple[Deployment, WebProcess]) -> None:
    deployment, server = acting
    now = time.time()
    insert = deployment.store.jobs.insert
    old = [insert(NewJob("parked", "t.noop", {})) for _ in range(3)]
    recent = [insert(NewJob("parked", "t.noop", {})) for _ in range(2)]
    other_task = insert(NewJob("parked", "t.record", {"n": 1}))
    waiting = insert(NewJob("parked", "t.noop", {}))
    for job_id in old:
        _make_dead(deployment, job_id, now - 2 * HOUR)
    for job_id in [*recent, other_task]:
        _make_dead(deployment, job_id, now - 60)

    # The time filter of the jobs list (the page's "created after/before").
    after = server.request("GET", f"/api/v1/jobs?daemon=parked&created_after={now - HOUR:.0f}", token=READ)
    assert after.status == 200, after.body
    assert [row["id"] for row in after.data["jobs"]] == sorted([*recent, other_task, waiting], reverse=True)
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - HOUR))
    before = server.request("GET", f"/api/v1/jobs?daemon=parked&created_before={iso}", token=READ)
    assert [row["id"] for row in before.data["jobs"]] == sorted(old, reverse=True)
    assert server.request("GET", f"/api/v1/jobs?created_after={now + HOUR:.0f}", token=READ).data["jobs"] == []

    filter_old = {"daemon": "parked", "task": "t.noop", "created_before": now - HOUR}
    _check_refused(server, deployment, [
        ("no token", "POST", "/api/v1/dead-jobs/retry", {"json_body": filter_old}, 401),
        ("the read token", "POST", "/api/v1/dead-jobs/delete", {"token": READ, "json_body": filter_old}, 403),
        ("a cross-site form post", "POST", "/api/v1/dead-jobs/delete",
         {"body": b"all=true", "headers": {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"jobd_token={ADMIN}"}}, 403),
        ("no filter and no all", "POST", "/api/v1/dead-jobs/retry", {"token": ADMIN, "json_body": {}}, 400),
        ("all given as a string", "POST", "/api/v1/dead-jobs/retry", {"token": ADMIN, "json_body": {"all": "yes"}}, 400),
        ("an unknown key (no SQL from input)", "POST", "/api/v1/dead-jobs/delete",
         {"token": ADMIN, "json_body": {"where": "1=1; DROP TABLE jobd_jobs"}}, 400),
        ("a time that is not one", "POST", "/api/v1/dead-jobs/retry", {"token": ADMIN, "json_body": {"created_after": "yesterday"}}, 400),
        ("an unknown daemon", "POST", "/api/v1/dead-jobs/retry", {"token": ADMIN, "json_body": {"daemon": "nope"}}, 400),
        ("an unknown action", "POST", "/api/v1/dead-jobs/explode", {"token": ADMIN, "json_body": filter_old}, 404),
        ("invalid JSON", "POST", "/api/v1/dead-jobs/retry", {"token": ADMIN, "body": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ("a bad time on the list", "GET", "/api/v1/jobs?created_after=soon", {"token": READ}, 400),
    ])

    retried = server.request("POST", "/api/v1/dead-jobs/retry", token=ADMIN, json_body=filter_old)
    assert retried.status == 200, retried.body
    assert retried.data["count"] == 3 and retried.data["more_left"] is False
    states = {row["id"]: row["state"] for row in _jobs_table(deployment)}
    assert [states[job_id] for job_id in old] == ["queued"] * 3
    assert [states[job_id] for job_id in [*recent, other_task]] == ["dead"] * 3 and states[waiting] == "queued"

    deleted = server.request("POST", "/api/v1/dead-jobs/delete", token=ADMIN, json_body={"daemon": "parked", "created_after": now - HOUR})
    assert deleted.status == 200 and deleted.data["count"] == 3, deleted.body
    left = {row["id"] for row in _jobs_table(deployment)}
    assert left.isdisjoint([*recent, other_task]) and {*old, waiting} <= left
    again = server.request("POST", "/api/v1/dead-jobs/delete", token=ADMIN, json_body={"all": True})
    assert again.status == 200 and again.data["count"] == 0
    log = server.log()
    assert "retry of 3 dead jobs (daemon=parked task=t.noop created<" in log and "by admin token from 127.0.0.1:" in log
    assert "delete of 3 dead jobs (daemon=parked created>=" in log


def test_deleting_a_job_refuses_one_that_runs_or_waits_and_removes_a_finished_one_with_its_log(
    acting: tuple[Deployment, WebProcess]
) -> None:
    deployment, server = acting
    finished = deployment.store.jobs.insert(NewJob("main", "t.record", {"n": 3}))
    wait_until(lambda: deployment.store.jobs.get(finished).state is JobState.SUCCEEDED, timeout=30, message="the job to finish")
    wait_until(lambda: len(deployment.store.job_logs.lines(finished)) >= 2, timeout=30,
               message="its log lines to be stored (the master writes them in batches)")
    running = deployment.store.jobs.insert(NewJob("main", "t.sleep", {"seconds": 30}))
    wait_until(lambda: deployment.store.jobs.get(running).state is JobState.RUNNING, timeout=30, message="the sleeper to run")
    waiting = deployment.store.jobs.insert(NewJob("parked", "t.noop", {}))
    _check_refused(server, deployment, [
        ("a running job", "POST", f"/api/v1/jobs/{running}/delete", {"token": ADMIN, "json_body": {}}, 409),
        ("a waiting job", "POST", f"/api/v1/jobs/{waiting}/delete", {"token": ADMIN, "json_body": {}}, 409),
        ("an unknown job", "POST", "/api/v1/jobs/987654/delete", {"token": ADMIN, "json_body": {}}, 404),
        ("the read token", "POST", f"/api/v1/jobs/{finished}/delete", {"token": READ, "json_body": {}}, 403),
        ("parameters", "POST", f"/api/v1/jobs/{finished}/delete", {"token": ADMIN, "json_body": {"force": True}}, 400),
        ("a foreign Origin", "POST", f"/api/v1/jobs/{finished}/delete",
         {"token": ADMIN, "json_body": {}, "headers": {"Origin": "http://evil.example"}}, 403),
    ])
    deleted = server.request("POST", f"/api/v1/jobs/{finished}/delete", token=ADMIN, json_body={})
    assert deleted.status == 200 and deleted.data == {"job_id": finished, "state": "succeeded", "deleted": True}
    assert server.request("GET", f"/api/v1/jobs/{finished}", token=READ).status == 404
    assert deployment.store.job_logs.lines(finished) == []
    assert f"delete of job {finished} (succeeded) by admin token from 127.0.0.1:" in server.log()
    assert deployment.store.jobs.get(running).state is JobState.RUNNING


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_daemon_is_stopped_started_scaled_and_restarted_through_the_master(acting: tuple[Deployment, WebProcess]) -> None:
    deployment, server = acting

    def main() -> dict[str, Any]:
        return dict(deployment.status()["daemons"]["main"])

    before = main()
    _check_refused(server, deployment, [
        ("the read token", "POST", "/api/v1/daemons/main/stop", {"token": READ, "json_body": {}}, 403),
        ("an unknown daemon", "POST", "/api/v1/daemons/nope/stop", {"token": ADMIN, "json_body": {}}, 400),
        ("an unknown action", "POST", "/api/v1/daemons/main/explode", {"token": ADMIN, "json_body": {}}, 404),
        ("scale without a number", "POST", "/api/v1/daemons/main/scale", {"token": ADMIN, "json_body": {}}, 400),
        ("scale to a string", "POST", "/api/v1/daemons/main/scale", {"token": ADMIN, "json_body": {"workers": "3"}}, 400),
        ("scale to true", "POST", "/api/v1/daemons/main/scale", {"token": ADMIN, "json_body": {"workers": True}}, 400),
        ("scale too far", "POST", "/api/v1/daemons/main/scale", {"token": ADMIN, "json_body": {"workers": 9999}}, 400),
        ("stop with parameters", "POST", "/api/v1/daemons/main/stop", {"token": ADMIN, "json_body": {"now": True}}, 400),
    ])
    assert main()["state"] == before["state"] == "started" and main()["size"] == before["size"] == 1

    stopped = server.request("POST", "/api/v1/daemons/main/stop", token=ADMIN, json_body={})
    assert stopped.status == 200 and stopped.data["was"] == "started", stopped.body
    wait_until(lambda: main()["state"] == "stopped", timeout=30, message="main to stop")
    started = server.request("POST", "/api/v1/daemons/main/start", token=ADMIN, json_body={})
    assert started.status == 200, started.body
    wait_until(lambda: main()["state"] == "started" and len(main()["workers"]) == 1, timeout=30, message="main to start")

    scaled = server.request("POST", "/api/v1/daemons/main/scale", token=ADMIN, json_body={"workers": 2})
    assert scaled.status == 200, scaled.body
    wait_until(lambda: sum(w["state"] in ("idle", "busy") for w in main()["workers"]) == 2, timeout=30, message="two workers")
    old_pids = {worker["pid"] for worker in main()["workers"]}
    restarted = server.request("POST", "/api/v1/daemons/main/restart", token=ADMIN, json_body={})
    assert restarted.status == 200 and sorted(restarted.data["old_pids"]) == sorted(old_pids), restarted.body
    wait_until(lambda: main()["restart"] is None and {w["pid"] for w in main()["workers"] if w["state"] in ("idle", "busy")}.isdisjoint(old_pids)
               and sum(w["state"] in ("idle", "busy") for w in main()["workers"]) == 2, timeout=60, message="a rolling restart")
    assert deployment.store.daemon_states.load()["main"].workers == 2  # durable, as `jobd scale` leaves it
    log = server.log()
    for line in ("stop of daemon main by admin token", "start of daemon main by admin token",
                 "scale of daemon main to 2 workers by admin token", "restart of daemon main by admin token"):
        assert line in log, line


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_schedule_entry_is_paused_resumed_and_run_now_as_a_validated_intent(acting: tuple[Deployment, WebProcess]) -> None:
    deployment, server = acting
    _check_refused(server, deployment, [
        ("an unknown entry", "POST", "/api/v1/schedules/nope/run", {"token": ADMIN, "json_body": {}}, 404),
        ("the read token", "POST", "/api/v1/schedules/nightly/run", {"token": READ, "json_body": {}}, 403),
        ("an unknown action", "POST", "/api/v1/schedules/nightly/skip", {"token": ADMIN, "json_body": {}}, 404),
        ("parameters", "POST", "/api/v1/schedules/nightly/run", {"token": ADMIN, "json_body": {"args": {"n": 1}}}, 400),
        ("a cookie post without X-Requested-By", "POST", "/api/v1/schedules/nightly/pause",
         {"json_body": {}, "headers": {"Cookie": f"jobd_token={ADMIN}"}}, 403),
    ])
    assert deployment.store.schedules.paused_targets() == set()

    paused = server.request("POST", "/api/v1/schedules/nightly/pause", token=ADMIN, json_body={})
    assert paused.status == 200 and paused.data == {"entry": "nightly", "paused": True, "changed": True}
    assert deployment.store.schedules.paused_targets() == {"entry:nightly"}
    wait_until(lambda: next(row for row in server.request("GET", "/api/v1/schedules", token=READ).data["schedules"]
                            if row["name"] == "nightly")["paused"], timeout=30, message="the entry to show as paused")
    resumed = server.request("POST", "/api/v1/schedules/nightly/resume", token=ADMIN, json_body={})
    assert resumed.status == 200 and resumed.data["changed"] is True
    assert deployment.store.schedules.paused_targets() == set()

    run = server.request("POST", "/api/v1/schedules/nightly/run", token=ADMIN, json_body={})
    assert run.status == 201, run.body
    job = deployment.store.jobs.get(run.data["job_id"])
    assert (job.daemon, job.task, job.args) == ("main", "t.record", {"n": 5})
    wait_until(lambda: deployment.store.jobs.get(job.id).state is JobState.SUCCEEDED, timeout=30, message="the entry's job to run")
    log = server.log()
    assert "pause of schedule entry nightly by admin token from 127.0.0.1:" in log
    assert f"run of schedule entry nightly by admin token from 127.0.0.1:" in log and f"submitted job {job.id}" in log


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_the_migrations_report_says_when_no_migrations_table_is_configured(acting: tuple[Deployment, WebProcess]) -> None:
    deployment, server = acting
    assert server.request("GET", "/api/v1/migrations").status == 401
    report = server.request("GET", "/api/v1/migrations", token=READ)
    assert report.status == 200 and report.data["configured"] is False
    assert "no [migrations] table is configured" in report.data["message"] and report.data["tenants"] == []


def test_the_store_walks_dead_jobs_in_bounded_batches_and_finds_a_time_window_by_bisection(store: Any) -> None:
    """Below the API: batches of ``batch`` rows, at most ``most`` per call (the rest is reported), state-guarded."""
    now = 1_700_000_000.0
    ids = [store.jobs.insert(NewJob("d", "t.noop", {}), now=now + n) for n in range(40)]
    jobs = store.jobs.table
    with store.engine.begin() as connection:
        connection.execute(jobs.update().where(jobs.c.id.in_(ids[::2])).values(state="dead", finished_at=now + 100))
        for n, job_id in enumerate(ids):
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(created_at=now + n))
    changed, left = store.jobs.dead_matching("retry", daemon="d", batch=3, most=7)
    assert changed == ids[0:14:2] and left is True
    changed, left = store.jobs.dead_matching("delete", daemon="d", batch=3, most=100)
    assert changed == ids[14::2] and left is False
    assert store.jobs.dead_matching("delete", daemon="d") == ([], False)
    kept = [job_id for job_id in ids if job_id not in ids[14::2]]
    with store.engine.begin() as connection:  # a row inserted a little out of order (another host's clock) is still found
        connection.execute(jobs.update().where(jobs.c.id == kept[-1]).values(created_at=now + 15.5))
    window = [job.id for job in store.jobs.list(created_after=now + 10, created_before=now + 20, limit=50)]
    assert window == sorted([job_id for n, job_id in enumerate(ids) if 10 <= n < 20 and job_id in kept] + [kept[-1]], reverse=True)
    assert store.jobs.list(created_after=now + 1000, limit=50) == []


def _fleet_helpers() -> Any:
    """The migration tests' fleet builder (real MariaDB tenant databases under a random prefix)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "migrations" / "conftest.py"
    spec = importlib.util.spec_from_file_location("jobd_web_fleet", path)
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
    return module


def test_the_migrations_page_shows_each_tenant_and_its_runs_without_changing_a_tenant(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str
) -> None:
    fleets = _fleet_helpers()
    prefix = f"jobdt_mig_{secrets.token_hex(4)}_"
    deployment = deployment_factory(mariadb_url)
    try:
        (deployment.root / "fleet").mkdir()
        fleet = fleets.build_fleet(prefix, 2, deployment.root / "fleet")
        ran = subprocess.run([sys.executable, "-m", "jobd.cli.migrate", "--tenants", "t01", "--config", str(fleet.config_path)],
                             capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        deployment.write_config({"main": {"workers": 1}}, web={"read_token": READ, "admin_token": ADMIN})
        migrations = fleet.config_path.read_text().replace('folder = "migrations"', f'folder = "{fleet.folder}"')
        deployment.config_path.write_text(deployment.config_path.read_text() + migrations)
        initialised = deployment.jobd("init")
        assert initialised.returncode == 0, initialised.stdout + initialised.stderr
        before = {tenant: fleet.fingerprint(tenant) for tenant in fleet.tenants}
        server = WebProcess(deployment).start()
        try:
            report = server.request("GET", "/api/v1/migrations", token=READ, timeout=60)
        finally:
            server.stop()
        assert report.status == 200 and report.data["configured"] is True, report.body
        tenants = {row["tenant"]: row for row in report.data["tenants"]}
        assert set(tenants) == {"t01", "t02"}
        assert tenants["t01"]["state"] == "up_to_date" and tenants["t01"]["current"] == report.data["latest"]
        assert [run["state"] for run in tenants["t01"]["runs"]] == ["succeeded"]
        assert tenants["t02"]["state"] == "behind" and tenants["t02"]["pending"] and tenants["t02"]["runs"] == []
        assert {tenant: fleet.fingerprint(tenant) for tenant in fleet.tenants} == before, "looking changed a tenant"
    finally:
        fleets.drop_prefixed(prefix)


def test_the_time_filter_reads_the_primary_key_never_the_whole_table(deployment_factory: Callable[[str], Deployment]) -> None:
    """Every statement a created-at window runs is a primary-key search (SQLite's plan), not a scan of the jobs table."""
    deployment = deployment_factory(None)
    store = deployment.store
    store.initialise()
    now = 1_700_000_000.0
    store.jobs.insert_many([NewJob("d", "t.noop", {}) for _ in range(2000)], now=now)
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", capture)
    try:
        assert len(store.jobs.list(created_after=now - 10, created_before=now + 10, limit=20)) == 20
        store.jobs.dead_matching("retry", created_after=now - 10)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert len(statements) >= 5
    with store.engine.connect() as connection:
        for statement, parameters in statements:
            plan = " | ".join(str(row[-1]) for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "SCAN" not in plan, f"{statement}\n→ {plan}"  # SEARCH by key, or min/max from the key's ends
