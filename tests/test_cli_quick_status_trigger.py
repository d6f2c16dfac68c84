"""`jobd status` and `jobd trigger` take quick paths that load neither SQLAlchemy nor pydantic, and say the same.

``status`` (``--json``, the tables for people, one daemon) with a master
running gets its document from the master (``status_report``), which
answers only for the config the command would have read and not while its
store is down. ``trigger`` submits through the database driver
(``jobd.ops.quick_submit``), checking the intent against the daemon's task
catalogue, or its task code before one is published, and refuses an unknown
task or bad args there with the full submit's words, writing nothing.
With an idle worker offered it hands the job over as ``jobd.submit`` does.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobd.config import load_config
from jobd.config_digest import config_digest
from jobd.control import client
from jobd.errors import ProtocolError
from jobd.handoff.offer import Offer, OfferReader, publish
from jobd.handoff.sockets import OFFER_SUFFIX, path_beside
from jobd.ops.quick_submit import submit_quickly
from jobd.status.report import read_status
from jobd.states import JobState
from support import Deployment, needs_handoff, wait_until
from test_cli_fast_paths import HEAVY, loaded_by, loads_nothing_heavy, own_cache  # noqa: F401  (own_cache: a fixture)

#: Fields of the status document that change from one reading to the next.
MOVING = {
    "generated_at", "uptime", "heartbeat_age", "heartbeat_at", "renewed_ago", "fence_in", "since", "idle_for", "last_seen",
    "next_token_in",  # a rate wait: 0 now, or the next second when read in the closing margin of this one
}


def steady(document: Any) -> Any:
    """The status document without the fields that move with the clock."""
    if isinstance(document, dict):
        return {key: steady(value) for key, value in document.items() if key not in MOVING}
    if isinstance(document, list):
        return [steady(value) for value in document]
    return document


def job_count(deployment: Deployment) -> int:
    return len(deployment.store.jobs.list(limit=10000))


def test_status_with_a_master_running_is_the_masters_document_for_programs_and_people_and_loads_nothing_heavy(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    deployment.write_config({"main": {"workers": 1}, "other": {"workers": 2}})
    deployment.start_master()
    deployment.jobd("trigger", "main", "t.record", "--wait", timeout=60, check=True)
    as_json, tables, detail = (
        result.stdout for result in loads_nothing_heavy(deployment, tmp_path, ("status", "--json"), ("status",), ("status", "main"))
    )
    from_master = json.loads(as_json)
    composed_here = json.loads(json.dumps(read_status(load_config(deployment.config_path, with_schedule=False)).to_json(), default=str))
    assert steady(from_master) == steady(composed_here)
    assert from_master["master"]["running"] is True and list(from_master["daemons"]) == ["main", "other"]
    # The tables for people are drawn from that document.
    assert "master running pid" in tables
    rows = {line.split()[0]: line.split()[1:] for line in tables.splitlines() if line.split()[:1] in (["main"], ["other"])}
    assert rows["main"][:3] == ["started/1", "started/1", "0"] and rows["main"][5] == "1"  # desired, actual, queued; done
    assert rows["other"][:2] == ["started/2", "started/2"]
    assert "main: desired started/1, actual started/1" in detail
    # Composed by the command instead (the file edited since the master read it): the same table for the daemons.
    deployment.write_config({"main": {"workers": 1}, "other": {"workers": 2}}, heartbeat_lease=45)
    composed_by_the_command = deployment.jobd("status", check=True).stdout
    assert [line for line in composed_by_the_command.splitlines() if line.split()[:1] in (["main"], ["other"])][:2] == \
        [line for line in tables.splitlines() if line.split()[:1] in (["main"], ["other"])][:2]


def test_a_master_answers_a_status_report_only_for_the_config_it_runs(deployment: Deployment, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    running = config_digest(deployment.config_path).settings
    assert client.call(deployment.socket, "status_report", {"settings": running})["report"]["version"] == 1
    deployment.write_config({"main": {"workers": 1}}, heartbeat_lease=45)  # edited, not reloaded
    edited = config_digest(deployment.config_path).settings
    assert edited != running
    assert client.call(deployment.socket, "status_report", {"settings": edited}) == {"report": None}
    status = json.loads(deployment.jobd("status", "--json", check=True).stdout)  # composed by the command
    assert status["master"]["running"] is True
    for bad in ({}, {"settings": 3}, {"settings": "x" * 129}):
        with pytest.raises(ProtocolError, match="settings must be"):
            client.call(deployment.socket, "status_report", bad)


def published(deployment: Deployment, daemons: dict[str, dict[str, Any]]) -> None:
    """A deployment whose task catalogue is in the store, as after any master's start or `jobd check`."""
    deployment.write_config(daemons)
    deployment.jobd("init", check=True)
    deployment.jobd("check", check=True)
    config_digest(deployment.config_path)  # as the first command after an edit does: validate and remember it


def test_trigger_through_the_driver_writes_the_job_the_full_submit_writes_and_loads_nothing_heavy(
    deployment_factory: Callable[[str], Deployment], store_url: str, tmp_path: Path, own_cache: Path,
) -> None:
    deployment = deployment_factory(store_url)
    published(deployment, {"main": {"workers": 1}})
    full = deployment.jobd("trigger", "main", "t.record", "--arg", "n=3", "--priority", "2", "--unique-key", "k", check=True)
    result, loaded = loaded_by(deployment, tmp_path, "trigger", "main", "t.record", "--arg", "n=3", "--priority", "2")
    assert result.returncode == 0, result.stderr
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    full_job, quick_job = (deployment.store.jobs.get(int(output.strip())) for output in (full.stdout, result.stdout))
    ignored = {"id", "unique_key", "created_at", "updated_at"}
    assert {k: v for k, v in quick_job.to_dict().items() if k not in ignored} == {
        k: v for k, v in full_job.to_dict().items() if k not in ignored
    }
    assert quick_job.to_dict()["state"] == "queued" and quick_job.args == {"n": 3}
    later = deployment.jobd("trigger", "main", "t.record", "--delay", "60", check=True)
    assert str(deployment.store.jobs.get(int(later.stdout)).state) == "scheduled"


@needs_handoff
def test_trigger_with_an_idle_worker_hands_the_job_straight_over_and_loads_nothing_heavy(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    published(deployment, {"main": {"workers": 1}})
    deployment.start_master()
    wait_until(
        lambda: (offer := OfferReader().read(path_beside(deployment.socket, OFFER_SUFFIX))) is not None and "main" in offer.daemons,
        message="the master to offer its idle worker",
    )
    result, loaded = loaded_by(deployment, tmp_path, "trigger", "main", "t.record", "--arg", "n=7")
    assert result.returncode == 0, result.stderr
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    job_id = int(result.stdout)
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED, timeout=30, message="the handed job to run")
    job = deployment.store.jobs.get(job_id)
    assert job.started_at == job.created_at  # inserted claimed: a master's claim of a queued job starts it later
    assert (job.attempts, job.args) == (1, {"n": 7})


@needs_handoff
def test_a_hand_off_nobody_takes_goes_back_to_the_queue_as_from_the_full_submit(deployment: Deployment, own_cache: Path) -> None:
    """A master killed with its offer left behind: the send fails, the job is queued again, its attempt refunded."""
    import jobd

    published(deployment, {"main": {"workers": 1}})
    publish(path_beside(deployment.socket, OFFER_SUFFIX), Offer("gone:1:0badcafe", frozenset({"main"}), {"main": ("w1",)}))
    quick = submit_quickly(config_digest(deployment.config_path), "main", "t.record", {"n": 1})
    full = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    assert quick is not None
    rows = [deployment.store.jobs.get(job_id).to_dict() for job_id in (quick, full)]
    for row in rows:
        assert (row["state"], row["owner"], row["attempts"], row["worker_pid"]) == ("queued", None, 0, None)
    moving = {"id", "created_at", "updated_at", "started_at"}
    assert [{k: v for k, v in row.items() if k not in moving} for row in rows] == [
        {k: v for k, v in rows[1].items() if k not in moving}
    ] * 2


@needs_handoff
def test_trigger_after_a_kill_9_of_the_master_pid_alone_puts_its_job_back_and_the_next_master_runs_it(
    deployment: Deployment, own_cache: Path,
) -> None:
    """The killed master leaves its offer behind: nobody takes the job, the driver path queues it again."""
    published(deployment, {"main": {"workers": 1}})
    first = deployment.start_master()
    wait_until(
        lambda: (offer := OfferReader().read(path_beside(deployment.socket, OFFER_SUFFIX))) is not None and "main" in offer.daemons,
        message="the master to offer its idle worker",
    )
    workers = deployment.worker_pids("main")
    os.kill(first.pid, signal.SIGKILL)  # the PID alone, as the OOM killer does
    first.wait(timeout=30)
    wait_until(lambda: not any(alive(pid) for pid in workers), timeout=30, message="the killed master's worker to end")
    assert path_beside(deployment.socket, OFFER_SUFFIX).exists()  # left behind, naming a worker nobody reads

    job_id = int(deployment.jobd("trigger", "main", "t.record", "--arg", "n=8", check=True).stdout)
    job = deployment.store.jobs.get(job_id)
    assert (job.state, job.owner, job.attempts) == (JobState.QUEUED, None, 0)

    deployment.start_master()
    wait_until(lambda: deployment.store.jobs.get(job_id).state is JobState.SUCCEEDED, timeout=30, message="the job on the next master")
    assert deployment.store.jobs.get(job_id).attempts == 1


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("args, message", [
    (("main", "t.nope"), "error: daemon 'main' has no task 't.nope' (its tasks: "),
    (("main", "t.record", "--arg", "m=1"), "error: task 't.record' does not accept these args"),
    (("main", "t.record", "--json", "{bad"), "error: --json is not valid JSON"),
    (("nope", "t.record"), "error: unknown daemon 'nope' (known daemons: main)"),
])
def test_trigger_refuses_bad_input_with_the_full_submits_words_and_writes_nothing(
    deployment: Deployment, tmp_path: Path, own_cache: Path, args: tuple[str, ...], message: str,
) -> None:
    published(deployment, {"main": {"workers": 1}})
    before = job_count(deployment)
    result = deployment.jobd("trigger", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(message), result.stderr
    assert job_count(deployment) == before


def test_the_driver_path_refuses_unknown_tasks_and_bad_args_itself(deployment: Deployment, own_cache: Path) -> None:
    from jobd.errors import InvalidArgs, UnknownTask

    published(deployment, {"main": {"workers": 1}})
    digest = config_digest(deployment.config_path)
    with pytest.raises(UnknownTask, match="has no task 't.nope'"):
        submit_quickly(digest, "main", "t.nope", {})
    with pytest.raises(InvalidArgs, match="does not accept these args"):
        submit_quickly(digest, "main", "t.record", {"m": 1})
    with pytest.raises(InvalidArgs, match="exceed"):
        submit_quickly(digest, "main", "t.record", {"n": "x" * 2_000_000})
    assert job_count(deployment) == 0
    job_id = submit_quickly(digest, "main", "t.record", {"n": 1})
    assert job_id is not None and deployment.store.jobs.get(job_id).args == {"n": 1}


def test_the_driver_path_leaves_to_the_full_submit_what_it_cannot_decide(deployment: Deployment, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1}})
    digest = config_digest(deployment.config_path)
    assert submit_quickly(digest, "main", "t.record", {}) is None  # no store file: never created here
    assert not Path(deployment.store_url.removeprefix("sqlite:///")).exists()
    deployment.jobd("init", check=True)
    assert submit_quickly(digest, "nope", "t.record", {}) is None  # the full submit names the known daemons
    assert submit_quickly(digest, "main", "t.nope", {}) is None  # no catalogue, not in its code: the full submit names its tasks
    assert job_count(deployment) == 0
    result = deployment.jobd("trigger", "main", "t.nope")
    assert result.returncode != 0 and "has no task 't.nope' (its tasks: " in result.stderr
    assert job_count(deployment) == 0


SHELL_AND_CODE = {"main": {"workers": 1, "shell": {"tidy": {"command": "true"}}}}


def test_before_any_catalogue_trigger_checks_the_task_code_itself_and_submits_through_the_driver(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    """No master has started on this store and `jobd check` has not run: the intent is checked by importing
    the daemon's task code, as the full submit does, without loading SQLAlchemy or pydantic for it."""
    deployment.write_config(SHELL_AND_CODE)
    deployment.jobd("init", check=True)
    config_digest(deployment.config_path)
    assert deployment.store.task_catalogue.read() == []  # nothing published: the case under test
    result, loaded = loaded_by(deployment, tmp_path, "trigger", "main", "t.record", "--arg", "n=4")
    assert result.returncode == 0, result.stderr
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert deployment.store.jobs.get(int(result.stdout)).args == {"n": 4}
    quick = deployment.jobd("trigger", "main", "t.record", "--arg", "m=1")
    full = deployment.jobd("trigger", "main", "t.record", "--arg", "m=1", "--wait-without-master", "--wait", "--timeout", "0.1")
    assert quick.returncode == full.returncode == 2 and "does not accept these args" in quick.stderr
    assert quick.stderr == full.stderr, "refused in the full submit's words"
    shell = deployment.jobd("trigger", "main", "tidy", check=True)  # a shell task: the config's, so the full submit's
    assert deployment.store.jobs.get(int(shell.stdout)).task == "tidy"
    assert job_count(deployment) == 2


def test_a_schedules_shell_tasks_are_named_as_the_quick_submit_expects() -> None:
    from jobd.ops.quick_submit import SCHEDULE_SHELL_PREFIX
    from jobd.schedules.entry import SHELL_TASK_PREFIX

    assert SCHEDULE_SHELL_PREFIX == SHELL_TASK_PREFIX


def test_the_quick_trigger_gives_up_at_once_on_a_store_out_of_reach_and_falls_back_only_on_an_older_schema() -> None:
    """Falling back to the full submit on an outage made `jobd trigger` wait out two read timeouts (20 s)."""
    import sqlite3

    import pymysql

    from jobd.ops.quick_submit import _out_of_reach

    assert _out_of_reach(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query (timed out)"))
    assert _out_of_reach(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'"))
    assert _out_of_reach(sqlite3.OperationalError("database is locked"))
    assert not _out_of_reach(sqlite3.OperationalError("no such table: jobd_task_catalogue"))
    assert not _out_of_reach(pymysql.err.ProgrammingError(1146, "Table 'x.jobd_task_catalogue' doesn't exist"))
