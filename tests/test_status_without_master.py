"""`jobd status` with no master reads the store through the driver alone, and says what the full path says.

With no master to ask, the command composes the status itself. It used to
validate the config's models and load SQLAlchemy for it; now it reads the
settings from the config's digest and the store through the database driver
(``jobd.ops.status_reads.quick_status``), running the composition and the
statements the full path runs (``jobd.status.compose``,
``jobd.store.status_reads_sql``). The two documents must be the same, on
SQLite and MariaDB, rate limits' waits included; where the quick path cannot
give the whole answer (a store missing or not initialised) it leaves the
document to the full path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from jobd.batch_record import BatchState
from jobd.config import load_config
from jobd.daemons.plan import Desired
from jobd.ops.status_reads import quick_status
from jobd.status.report import read_status
from jobd.states import JobState
from jobd.store import NewJob
from jobd.store.jobs import Outcome
from support import Deployment
from test_cli_fast_paths import loads_nothing_heavy, own_cache  # noqa: F401  (own_cache: a fixture)
from test_cli_quick_status_trigger import steady


def a_store_with_history(deployment: Deployment) -> None:
    """Jobs of configured and unconfigured daemons, desired states, masters alive and stopped, batches, rate waits."""
    deployment.write_config({
        "main": {"workers": 2}, "other": {"workers": 1, "enabled": False},
        "limited": {"workers": 1, "rate_limit": "1/m", "task_rate_limits": {"t.record": "2/h"}},
    })
    deployment.jobd("init", check=True)
    store = deployment.store
    for _ in range(2):
        store.jobs.insert(NewJob(daemon="limited", task="t.record", args={}))
    for _ in range(3):
        store.jobs.insert(NewJob(daemon="main", task="t.record", args={}))
    failed = store.jobs.insert(NewJob(daemon="other", task="t.record", args={}))
    store.jobs.cancel(failed)
    store.jobs.insert(NewJob(daemon="ghost", task="t.record", args={}))  # no master runs it: an "unserved" note
    store.daemon_states.save("other", Desired(running=True, workers=3))
    store.masters.register("elsewhere:1:a", pid=os.getpid(), version="0.0.1", daemons=["main"], control_socket=None)
    store.masters.register("gone:2:b", pid=os.getpid(), version="0.0.1", daemons=["other"], control_socket=None)
    store.masters.mark_stopped("gone:2:b")
    store.batches.create("mailing")
    sealed = store.batches.create("sealed-empty")
    store.batches.seal(sealed)


@pytest.fixture(params=["sqlite", "mariadb"])
def with_history(request: pytest.FixtureRequest, deployment_factory: Callable[[str | None], Deployment], own_cache: Path) -> Deployment:
    """A deployment whose store has ``a_store_with_history``, on each backend; no master runs."""
    deployment = deployment_factory(request.getfixturevalue("mariadb_url") if request.param == "mariadb" else None)
    a_store_with_history(deployment)
    return deployment


def test_the_driver_composes_the_document_the_full_path_composes(with_history: Deployment) -> None:
    deployment = with_history
    quick = quick_status(deployment.config_path, live_activity=True)
    assert quick is not None, "no master runs: the driver path answers"
    full = json.loads(json.dumps(read_status(load_config(deployment.config_path, with_schedule=False)).to_json(), default=str))
    assert steady(quick) == steady(full)
    # What that document says, so the comparison cannot pass on two empty ones.
    assert quick["master"] == {"running": False}
    assert quick["daemons"]["main"]["counts"] == {"queued": 3} and quick["daemons"]["main"]["desired"]["size"] == 2
    assert quick["daemons"]["other"]["desired"] == {"state": "started", "workers": 3, "size": 3}
    assert quick["daemons"]["ghost"]["desired"] is None and quick["daemons"]["ghost"]["size"] == 0
    assert [entry["daemon"] for entry in quick["unserved"]] == ["ghost", "limited"]  # only "main" has a live master
    assert {master["id"]: master["alive"] for master in quick["masters"]} == {"elsewhere:1:a": True, "gone:2:b": False}
    assert [batch["name"] for batch in quick["batches"]] == ["sealed-empty", "mailing"]
    assert quick["batches"][1]["state"] == str(BatchState.OPEN)
    waits = {wait["key"]: (wait["waiting"], wait["per_second"], wait["burst"]) for wait in quick["daemons"]["limited"]["rate_limited"]}
    assert waits == {"limited": (2, 1 / 60, 1.0), "limited:t.record": (2, 2 / 3600, 1.0)}


def test_status_with_no_master_loads_neither_sqlalchemy_nor_pydantic(deployment: Deployment, tmp_path: Path, own_cache: Path) -> None:
    a_store_with_history(deployment)
    tables, _ = (result.stdout for result in loads_nothing_heavy(deployment, tmp_path, ("status",), ("status", "--json")))
    assert "master not running" in tables and "ghost: 1 queued, no master runs this daemon" in tables
    assert any(line.split()[:3] == ["other", "started/3", "stopped"] for line in tables.splitlines())


def test_a_store_missing_or_not_initialised_is_left_to_the_full_path(deployment: Deployment, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert quick_status(deployment.config_path, live_activity=False) is None  # no store file yet: nothing created
    assert not Path(deployment.store_url.removeprefix("sqlite:///")).exists()
    Path(deployment.store_url.removeprefix("sqlite:///")).write_bytes(b"")  # a file, but no jobd tables
    assert quick_status(deployment.config_path, live_activity=False) is None
    deployment.jobd("init", check=True)
    document = quick_status(deployment.config_path, live_activity=False)
    assert document is not None and document["daemons"]["main"]["counts"] == {}


def test_status_of_one_daemon_through_the_driver_is_what_the_full_path_says(with_history: Deployment) -> None:
    from jobd.daemons.client import status_from_store
    from jobd.ops.status_reads import daemon_status_from_store

    deployment = with_history
    store = deployment.store
    dead = store.jobs.insert(NewJob(daemon="other", task="t.record", args={}, max_attempts=1))
    store.jobs.claim("other", 1, "m1")
    store.jobs.apply_outcomes("m1", [Outcome(dead, 1, JobState.DEAD, {"error": "ValueError: no", "traceback": None, "run_at": None})])
    quick = daemon_status_from_store(deployment.config_path, "other")
    assert quick is not None
    full = status_from_store(load_config(deployment.config_path, with_schedule=False), "other")
    assert steady(quick) == steady(full)
    assert quick["daemon"]["desired"] == {"state": "started", "workers": 3, "size": 3}
    assert [failure["id"] for failure in quick["daemon"]["recent_failures"]] == [dead]
    assert quick["daemon"]["counts"] == {"cancelled": 1, "dead": 1}
    main = daemon_status_from_store(deployment.config_path, "main")
    assert main is not None and main["daemon"]["queue"]["depth"] == 3
    assert daemon_status_from_store(deployment.config_path, "nosuch") is None  # the full path names the known daemons
    tables = deployment.jobd("status", "other", check=True).stdout
    assert "desired started/3, actual stopped (master not running)" in tables and "ValueError: no" in tables
