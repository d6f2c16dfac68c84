"""The HTTP API of `jobd web` against a real master and a real `jobd web` process (no mocks)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from jobd.states import JobState
from jobd.store import NewJob
from support import Deployment, MemcachedServer, free_port, wait_until

from .webserver import WebProcess

READ = "read-" + secrets.token_hex(12)
ADMIN = "admin-" + secrets.token_hex(12)


def _jobs_table(deployment: Deployment) -> list[dict[str, Any]]:
    table = deployment.store.jobs.table
    with deployment.store.engine.connect() as connection:
        return [dict(row) for row in connection.execute(sa.select(table).order_by(table.c.id)).mappings()]


@pytest.fixture
def web(deployment_factory: Callable[[str], Deployment], store_url: str) -> Iterator[tuple[Deployment, WebProcess, int]]:
    """A master with one daemon, a dead job, and `jobd web` with tokens from the config file."""
    deployment = deployment_factory(store_url)
    deployment.write_config({"main": {"workers": 1}}, web={"read_token": READ, "admin_token": ADMIN})
    deployment.start_master()
    dead = deployment.store.jobs.insert(NewJob("main", "t.fail", {}, max_attempts=1))
    wait_until(lambda: deployment.store.jobs.get(dead).state is JobState.DEAD, timeout=30, message="the job to die")
    server = WebProcess(deployment).start()
    try:
        yield deployment, server, dead
    finally:
        server.stop()


def test_bad_requests_get_a_json_4xx_and_change_nothing_in_the_store(web: tuple[Deployment, WebProcess, int]) -> None:
    deployment, server, dead = web
    before = _jobs_table(deployment)
    form = {"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.example", "Cookie": f"jobd_token={ADMIN}"}
    cookie_json = {"Content-Type": "application/json", "Cookie": f"jobd_token={ADMIN}"}
    intent = {"daemon": "main", "task": "t.noop"}
    cases: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("no token on a read", "GET", "/api/v1/status", {}, 401),
        ("no token on an action", "POST", f"/api/v1/jobs/{dead}/retry", {"json_body": {}}, 401),
        ("a wrong token", "POST", "/api/v1/jobs", {"token": "x" * 30, "json_body": intent}, 401),
        ("the read token on retry", "POST", f"/api/v1/jobs/{dead}/retry", {"token": READ, "json_body": {}}, 403),
        ("the read token on a submit", "POST", "/api/v1/jobs", {"token": READ, "json_body": intent}, 403),
        ("a cross-site form post with the admin cookie", "POST", f"/api/v1/jobs/{dead}/retry", {"body": b"confirm=1", "headers": form}, 403),
        ("a cross-site form submit with the admin cookie", "POST", "/api/v1/jobs", {"body": b"daemon=main&task=t.noop", "headers": form}, 403),
        ("a cross-site JSON post", "POST", f"/api/v1/jobs/{dead}/retry",
         {"json_body": {}, "headers": {**cookie_json, "X-Requested-By": "jobd", "Sec-Fetch-Site": "cross-site"}}, 403),
        ("a foreign Origin even with the admin bearer token", "POST", f"/api/v1/jobs/{dead}/retry",
         {"token": ADMIN, "json_body": {}, "headers": {"Origin": "http://evil.example"}}, 403),
        ("a cookie-authenticated post without X-Requested-By", "POST", f"/api/v1/jobs/{dead}/retry", {"json_body": {}, "headers": cookie_json}, 403),
        ("an unknown job", "GET", "/api/v1/jobs/987654", {"token": READ}, 404),
        ("retry of an unknown job", "POST", "/api/v1/jobs/987654/retry", {"token": ADMIN, "json_body": {}}, 404),
        ("a 2 MB body", "POST", "/api/v1/jobs", {"token": ADMIN, "body": b"{" + b" " * 2_000_000 + b"}",
                                                "headers": {"Content-Type": "application/json"}}, 413),
        ("invalid JSON", "POST", "/api/v1/jobs", {"token": ADMIN, "body": b'{"daemon": "main", ', "headers": {"Content-Type": "application/json"}}, 400),
        ("an unknown task", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {"daemon": "main", "task": "t.nope"}}, 400),
        ("an unknown daemon", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {"daemon": "nope", "task": "t.noop"}}, 400),
        ("args that the task does not take", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {**intent, "args": {"surprise": 1}}}, 400),
        ("args that are not an object", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {**intent, "args": [1]}}, 400),
        ("an unknown key", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {**intent, "sudo": True}}, 400),
        ("a priority past the store's INTEGER", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {**intent, "priority": 2**31}}, 400),
        ("more attempts than a daemon may ask", "POST", "/api/v1/jobs", {"token": ADMIN, "json_body": {**intent, "max_attempts": 1001}}, 400),
        ("a bad page size", "GET", "/api/v1/jobs?limit=0", {"token": READ}, 400),
        ("an unknown state", "GET", "/api/v1/jobs?state=happy", {"token": READ}, 400),
        ("retry of a job that is not dead", "POST", f"/api/v1/jobs/{dead + 0}/cancel", {"token": ADMIN, "json_body": {}}, 409),
        ("a wrong method", "GET", f"/api/v1/jobs/{dead}/retry", {"token": ADMIN}, 405),
        ("an unknown path", "GET", "/api/v1/nothing", {"token": ADMIN}, 404),
    ]
    for what, method, path, options, expected in cases:
        answer = server.request(method, path, **options)
        assert answer.status == expected, f"{what}: {answer.status} {answer.body[:300]!r}"
        assert answer.headers["content-type"].startswith("application/json"), what
        assert answer.data["status"] == expected and answer.data["message"], what
        assert answer.headers["x-content-type-options"] == "nosniff", what
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], what
        assert _jobs_table(deployment) == before, f"{what} changed the store"
    assert "refused POST" in server.log() and "cross-site" in server.log()


def test_the_admin_token_submits_retries_and_pages_through_jobs(web: tuple[Deployment, WebProcess, int]) -> None:
    deployment, server, dead = web
    status = server.request("GET", "/api/v1/status", token=READ)
    assert status.status == 200 and status.data["version"] == 1 and "main" in status.data["daemons"]
    assert status.data["master"]["running"] is True
    submitted = server.request("POST", "/api/v1/jobs", token=ADMIN, json_body={"daemon": "main", "task": "t.record", "args": {"n": 7}})
    assert submitted.status == 201, submitted.body
    job_id = submitted.data["job_id"]
    wait_until(lambda: server.request("GET", f"/api/v1/jobs/{job_id}", token=READ).data["state"] == "succeeded",
               timeout=30, message="the submitted job to succeed")
    assert server.request("GET", f"/api/v1/jobs/{job_id}", token=READ).data["args"] == {"n": 7}
    for priority in (2**31 - 1, -(2**31)):  # the same range as jobd.submit and jobd trigger
        urgent = server.request("POST", "/api/v1/jobs", token=ADMIN,
                                json_body={"daemon": "main", "task": "t.noop", "priority": priority})
        assert urgent.status == 201, urgent.body
        assert deployment.store.jobs.get(urgent.data["job_id"]).priority == priority

    retried = server.request("POST", f"/api/v1/jobs/{dead}/retry", token=ADMIN, json_body={})
    assert retried.status == 200 and retried.data["state"] == "queued"
    wait_until(lambda: deployment.store.jobs.get(dead).attempts >= 1 and deployment.store.jobs.get(dead).state is JobState.DEAD,
               timeout=30, message="the retried job to run (and fail) again")
    assert f"retry of job {dead} by admin token from 127.0.0.1:" in server.log()
    assert f"submitted job {job_id} (t.record on main) by admin token from 127.0.0.1:" in server.log()

    for n in range(7):
        deployment.store.jobs.insert(NewJob("main", "t.noop", {}, run_at=4_000_000_000 + n))  # waits: not run
    seen: list[int] = []
    path: str | None = "/api/v1/jobs?state=scheduled&limit=3"
    while path is not None:
        page = server.request("GET", path, token=READ)
        assert page.status == 200, page.body
        seen += [row["id"] for row in page.data["jobs"]]
        assert len(page.data["jobs"]) <= 3
        path = page.data["next"]
    assert len(seen) == 7 and seen == sorted(seen, reverse=True)
    schedules = server.request("GET", "/api/v1/schedules", token=READ)
    assert schedules.status == 200 and isinstance(schedules.data["schedules"], list)
    document = server.request("GET", "/api/v1/openapi.json")
    assert document.data["openapi"].startswith("3.") and "/api/v1/jobs/{job_id}/retry" in document.data["paths"]


def test_a_non_loopback_bind_without_tokens_refuses_to_start(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    result = subprocess.run(
        [sys.executable, "-m", "jobd.cli.app", "web", "--bind", f"0.0.0.0:{free_port()}"],
        env=deployment.env(), cwd=deployment.root, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to listen on 0.0.0.0 without tokens" in result.stderr and "JOBD_WEB_ADMIN_TOKEN" in result.stderr
    # On loopback it starts without tokens, and then answers only to loopback host names (no DNS rebinding).
    server = WebProcess(deployment).start()
    try:
        assert server.request("GET", "/api/v1/view").status == 200
        rebound = server.request("GET", "/api/v1/view", headers={"Host": f"evil.example:{server.port}"})
        assert rebound.status == 403 and "Host" in rebound.data["message"]
    finally:
        server.stop()


def test_tokens_from_the_environment_are_required(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    server = WebProcess(deployment, env={"JOBD_WEB_READ_TOKEN": READ, "JOBD_WEB_ADMIN_TOKEN": ADMIN}).start()
    try:
        assert server.request("GET", "/api/v1/jobs").status == 401
        uninitialised = server.request("GET", "/api/v1/jobs", token=READ)
        assert uninitialised.status == 503 and "jobd init" in uninitialised.data["message"]
        deployment.jobd("init", check=True)
        assert server.request("GET", "/api/v1/jobs", token=READ).status == 200
        signed_in = server.request("POST", "/api/v1/session", json_body={"token": READ}, headers={"X-Requested-By": "jobd"})
        assert signed_in.status == 200 and "httponly" in signed_in.headers["set-cookie"].lower()
        assert "samesite=strict" in signed_in.headers["set-cookie"].lower()
    finally:
        server.stop()


@pytest.mark.memcached
def test_with_memcached_the_live_view_comes_from_memcached(deployment: Deployment, memcached: MemcachedServer) -> None:
    """What any host's `jobd web` reads when the masters publish to memcached: every host's data."""
    deployment.write_config({"main": {"workers": 1}}, memcached=[memcached.address])
    deployment.start_master()
    job_id = deployment.store.jobs.insert(NewJob("main", "t.progress", {"steps": 200, "step_seconds": 0.05}))
    server = WebProcess(deployment).start()
    try:
        def running() -> dict[str, Any] | None:
            view = server.request("GET", "/api/v1/view").data
            rows = [row for row in view["running"] if row["job_id"] == job_id and row.get("percent")]
            return view if view["source"] == "memcached" and rows else None

        view = wait_until(running, timeout=30, interval=0.2, message="the running job in memcached's view")
        assert "main" in view["daemons"] and view["masters"][0]["host"]
    finally:
        server.stop()
