"""The task catalogue: submits check intents against what the daemons publish, importing no task code."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import jobd
from jobd.catalogue import CatalogueCache, DaemonCatalogue, catalogue_rows, decode
from jobd.config import load_config
from jobd.errors import InvalidArgs, StoreUnavailable, UnknownTask
from jobd.inventory import load_inventory
from jobd.store import Store
from jobd.store.task_catalogue import CatalogueRow
from support import Deployment, wait_until

SUBMITTER = """
import json, sys
import jobd
from jobd.errors import JobdError

config, intents = sys.argv[1], json.loads(sys.argv[2])
results = []
for daemon, task, args in intents:
    try:
        results.append(["submitted", jobd.submit(daemon, task, args, config=config)])
    except JobdError as error:
        results.append([type(error).__name__, str(error)])
print(json.dumps({"results": results, "task_module_imported": "testtasks" in sys.modules}))
"""

SHELL = {"s.echo": {"command": "echo hi"}}


def submit_elsewhere(deployment: Deployment, *intents: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    """Submit from a fresh interpreter, as an application would; what it answered and what it imported."""
    completed = subprocess.run(
        [sys.executable, "-c", SUBMITTER, str(deployment.config_path), json.dumps(intents)],
        capture_output=True, text=True, timeout=60, check=False, cwd=deployment.root,
    )
    assert completed.returncode == 0, completed.stderr
    answer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


def published_tasks(deployment: Deployment, daemon: str) -> dict[str, str]:
    return {row.daemon: row.tasks for row in deployment.store.task_catalogue.read()}.get(daemon, "")


@pytest.mark.parametrize("task, args", [("t.record", {"n": 1}), ("s.echo", {})], ids=["python task", "shell task"])
def test_a_submitting_application_imports_no_task_module_once_the_catalogue_is_published(
    deployment: Deployment, task: str, args: dict[str, Any]
) -> None:
    deployment.write_config({"main": {"workers": 1, "shell": SHELL}})
    assert deployment.jobd("init").returncode == 0
    before = submit_elsewhere(deployment, ("main", task, args))
    assert before["results"][0][0] == "submitted"
    assert before["task_module_imported"], "no catalogue yet: the task code is imported to check the intent"

    checked = deployment.jobd("check")
    assert checked.returncode == 0 and "task catalogue published" in checked.stdout, checked.stdout
    after = submit_elsewhere(deployment, ("main", task, args))
    assert after["results"][0][0] == "submitted"
    assert not after["task_module_imported"]
    assert sum(deployment.store.jobs.counts()["main"].values()) == 2


def test_refusals_read_the_same_with_or_without_a_catalogue_and_write_nothing(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "shell": SHELL}})
    assert deployment.jobd("init").returncode == 0
    refused = [
        ("main", "no.such", {}),
        ("nosuch", "t.record", {}),
        ("main", "t.record", {"nope": 1}),
        ("main", "t.record", {"ctx": 1}),
        ("main", "t.slot", {}),  # a required arg missing
        ("main", "s.echo", {"x": 1}),
        ("main", "t.record", [1]),
    ]
    by_import = submit_elsewhere(deployment, *refused)  # type: ignore[arg-type]
    assert deployment.jobd("check").returncode == 0
    by_catalogue = submit_elsewhere(deployment, *refused)  # type: ignore[arg-type]

    assert by_catalogue["results"] == by_import["results"]
    assert not by_catalogue["task_module_imported"]
    kinds = [kind for kind, _ in by_catalogue["results"]]
    assert kinds == ["UnknownTask", "UnknownDaemon", "InvalidArgs", "InvalidArgs", "InvalidArgs", "InvalidArgs", "InvalidArgs"]
    messages = [message for _, message in by_catalogue["results"]]
    assert "daemon 'main' has no task 'no.such' (its tasks: s.echo, " in messages[0]
    assert "task 't.slot' does not accept these args: missing a required argument: 'log_dir'" in messages[4]
    assert deployment.store.jobs.counts() == {}


def test_a_running_application_picks_up_the_catalogue_of_a_changed_config(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0 and deployment.jobd("check").returncode == 0
    first_version = {row.daemon: row.version for row in deployment.store.task_catalogue.read()}["main"]
    assert jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path) > 0  # this process reads the catalogue
    with pytest.raises(UnknownTask, match="has no task 'x.added'"):
        jobd.submit("main", "x.added", {"n": 2}, config=deployment.config_path)

    deployment.write_config({"main": {"workers": 1, "tasks": {"x.added": "testtasks:slot"}}})
    assert deployment.jobd("check").returncode == 0
    assert {row.daemon: row.version for row in deployment.store.task_catalogue.read()}["main"] != first_version
    # The copy this process holds refuses; the refusal reads the store again and finds the new task.
    assert jobd.submit("main", "x.added", {"log_dir": "/tmp"}, config=deployment.config_path) > 0
    with pytest.raises(InvalidArgs, match="task 'x.added' does not accept these args: missing a required argument: 'log_dir'"):
        jobd.submit("main", "x.added", {}, config=deployment.config_path)


def test_a_master_publishes_at_start_and_on_reload(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    assert '"t.record"' in published_tasks(deployment, "main")

    deployment.write_config({"main": {"workers": 1, "shell": SHELL}})
    assert deployment.jobd("reload").returncode == 0
    wait_until(lambda: '"s.echo"' in published_tasks(deployment, "main"), message="the reloaded config's catalogue")
    answer = submit_elsewhere(deployment, ("main", "s.echo", {}))
    assert answer["results"][0][0] == "submitted" and not answer["task_module_imported"]
    deployment.wait_all_final([answer["results"][0][1]])
    assert deployment.store.jobs.get(answer["results"][0][1]).state == "succeeded"


def test_check_passes_without_publishing_when_the_store_is_not_initialised(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    result = deployment.jobd("check")
    assert result.returncode == 0, result.stderr
    assert "task catalogue not published: the store is not initialised (run `jobd init`)" in " ".join(result.stdout.split())
    assert not (deployment.root / "jobd.db").exists(), "checking a config creates no store"


# -- publishing: versioned, written only when it changed (both stores) ----------------------------


def test_publishing_writes_a_daemon_only_when_its_version_changed(store: Store, deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}, "other": {"workers": 1, "shell": SHELL}})
    config = load_config(deployment.config_path)
    inventory = load_inventory(config)
    assert sorted(store.task_catalogue.publish(catalogue_rows(config, inventory, 1.0))) == ["main", "other"]
    assert store.task_catalogue.publish(catalogue_rows(config, inventory, 2.0)) == []
    assert {row.published_at for row in store.task_catalogue.read()} == {1.0}

    deployment.write_config({"main": {"workers": 1}, "other": {"workers": 1, "shell": {"s.echo": {"command": "echo changed"}}}})
    changed = load_config(deployment.config_path)
    assert store.task_catalogue.publish(catalogue_rows(changed, load_inventory(changed), 3.0)) == ["other"]
    rows = {row.daemon: decode(row) for row in store.task_catalogue.read()}
    assert set(rows["main"].tasks) >= {"t.record", "t.slot"} and set(rows["other"].tasks) >= {"s.echo"}


# -- the copy a submitting process holds (a fake reader and a manual clock) ----------------------


class Published:
    def __init__(self) -> None:
        self.rows: list[CatalogueRow] = []
        self.reads = 0
        self.failing = False

    def set(self, version: str, tasks: dict[str, Any]) -> None:
        self.rows = [CatalogueRow("main", version, json.dumps({"tasks": tasks}), 0.0)]

    def read(self) -> list[CatalogueRow]:
        self.reads += 1
        if self.failing:
            raise StoreUnavailable("the job was not submitted: the store is unavailable")
        return list(self.rows)


RECORD = {"t.record": {"parameters": [["ctx", "POSITIONAL_OR_KEYWORD", False], ["n", "POSITIONAL_OR_KEYWORD", True]]}}


def test_the_held_copy_is_read_once_per_max_age_and_when_asked_fresh() -> None:
    published, now = Published(), [0.0]
    published.set("v1", RECORD)
    cache = CatalogueCache(published.read, max_age=5.0, clock=lambda: now[0])
    first = cache.get("main")
    assert first is not None and first.version == "v1"
    now[0] = 4.9
    assert cache.get("main") is first and published.reads == 1
    now[0] = 5.0
    assert cache.get("main") is first and published.reads == 2, "same version: the entry is kept, not decoded again"
    published.set("v2", {})
    assert cache.get("main") is first and published.reads == 2
    fresh = cache.get("main", fresh=True)
    assert fresh is not None and fresh.version == "v2" and published.reads == 3
    assert cache.get("other") is None


def test_a_failing_store_leaves_the_held_copy_in_use_and_is_reported_when_nothing_is_held() -> None:
    published, now = Published(), [0.0]
    published.failing = True
    cache = CatalogueCache(published.read, max_age=5.0, clock=lambda: now[0])
    with pytest.raises(StoreUnavailable, match="not submitted"):
        cache.get("main")
    published.failing = False
    published.set("v1", RECORD)
    held = cache.get("main")
    published.failing = True
    now[0] = 10.0
    assert cache.get("main") is held


def test_an_unreadable_row_counts_as_no_catalogue_for_its_daemon(caplog: pytest.LogCaptureFixture) -> None:
    published = Published()
    for tasks in ("not json", json.dumps({"tasks": {"t.x": {"parameters": [["1bad", "KEYWORD_ONLY", False]]}}}),
                  json.dumps({"tasks": {"t.x": {"parameters": [["a", "SIDEWAYS", False]]}}}), json.dumps([])):
        published.rows = [CatalogueRow("main", tasks, tasks, 0.0)]
        assert CatalogueCache(published.read).get("main") is None
    assert "is not readable" in caplog.text


def test_a_daemon_catalogue_refuses_like_the_task_code() -> None:
    catalogue = DaemonCatalogue("main", "v1", decode(CatalogueRow("main", "v1", json.dumps({"tasks": RECORD}), 0.0)).tasks, 0.0)
    catalogue.check("t.record", {"n": 1})
    with pytest.raises(UnknownTask, match=r"^daemon 'main' has no task 't.nope' \(its tasks: t.record\)$"):
        catalogue.check("t.nope", {})
    with pytest.raises(InvalidArgs, match="^task 't.record' does not accept these args: got an unexpected keyword argument 'm'$"):
        catalogue.check("t.record", {"m": 1})
