"""jobd.submit from an application: bad intents are refused before anything is written."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

import jobd
from jobd.errors import ConfigError, InvalidArgs, UnknownDaemon, UnknownTask
from support import Deployment


def written(deployment: Deployment) -> int:
    deployment.store.initialise()
    return sum(sum(states.values()) for states in deployment.store.jobs.counts().values())


@pytest.mark.parametrize("reuse_cached", [False, True])
def test_args_that_are_not_json_are_refused_and_nothing_is_written(deployment: Deployment, reuse_cached: bool) -> None:
    deployment.write_config({"main": {"workers": 1}})
    with pytest.raises(InvalidArgs, match="not JSON-serialisable"):
        jobd.submit("main", "t.record", {"n": dt.datetime.now()}, config=deployment.config_path, reuse_cached=reuse_cached)
    assert written(deployment) == 0


def test_an_unknown_task_daemon_or_argument_is_refused_and_nothing_is_written(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    with pytest.raises(UnknownTask, match="has no task 'no.such'"):
        jobd.submit("main", "no.such", {}, config=deployment.config_path)
    with pytest.raises(UnknownDaemon, match="known daemons: main"):
        jobd.submit("nosuch", "t.record", {}, config=deployment.config_path)
    with pytest.raises(InvalidArgs, match="does not accept these args"):
        jobd.submit("main", "t.record", {"nope": 1}, config=deployment.config_path)
    assert written(deployment) == 0


BAD_OPTIONS = [
    ({"priority": "high"}, "priority must be a whole number from -2147483648 to 2147483647, not 'high'"),
    ({"priority": 2**63}, "priority must be a whole number"),
    ({"priority": 1.5}, "priority must be a whole number"),
    ({"max_attempts": 0}, "max_attempts must be a whole number from 1 to 1000"),
    ({"max_attempts": "x"}, "max_attempts must be a whole number"),
    ({"run_at": float("nan")}, "run_at must be a finite time"),
    ({"run_at": float("inf")}, "run_at must be a finite time"),
    ({"run_at": "tomorrow"}, "run_at must be a finite time"),
]


@pytest.mark.parametrize("way", ["submit", "submit_many", "batch", "in a transaction"])
def test_a_priority_run_at_or_max_attempts_the_store_cannot_keep_as_meant_is_refused_and_nothing_is_written(
    deployment: Deployment, way: str,
) -> None:
    """SQLite keeps whatever it is given: "high" as a priority, NaN as a run_at (then NULL: due at once)."""
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    deployment.jobd("check", check=True)  # the catalogue: a plain submit goes through the driver
    config = str(deployment.config_path)
    for options, complaint in BAD_OPTIONS:
        with pytest.raises(InvalidArgs, match=re.escape(complaint)):
            if way == "submit":
                jobd.submit("main", "t.noop", {}, config=config, **options)
            elif way == "submit_many":
                jobd.submit_many("main", "t.noop", [{}, {}], config=config, **options)
            elif way == "batch":
                with jobd.batch("nightly", config=config) as batch:
                    batch.submit("main", "t.noop", {}, **options)
            else:
                with deployment.store.engine.begin() as connection:
                    jobd.submit("main", "t.noop", {}, connection=connection, config=config, **options)
    assert written(deployment) == 0


@pytest.mark.parametrize("unique_key", [5, "", "k" * 191])
def test_a_unique_key_the_index_cannot_hold_is_refused_as_submit_many_refuses_it(deployment: Deployment, unique_key: object) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    deployment.jobd("check", check=True)
    complaint = f"unique key {unique_key!r} must be a non-empty string of at most 190 characters"
    with pytest.raises(InvalidArgs, match=re.escape(complaint)):
        jobd.submit("main", "t.noop", {}, unique_key=unique_key, config=str(deployment.config_path))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgs, match=re.escape(f"item 0: {complaint}")):
        jobd.submit_many("main", "t.noop", [{}], unique_keys=[unique_key], config=str(deployment.config_path))  # type: ignore[list-item]
    assert written(deployment) == 0


def test_the_config_is_found_the_same_way_however_it_is_named(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.store.initialise()
    by_path = jobd.submit("main", "t.record", {"n": 1}, config=deployment.config_path)
    by_text = jobd.submit("main", "t.record", {"n": 2}, config=str(deployment.config_path))
    monkeypatch.chdir(deployment.root)
    relative = jobd.submit("main", "t.record", {"n": 3}, config="jobd.toml")
    monkeypatch.setenv("JOBD_CONFIG", str(deployment.config_path))
    from_env = jobd.submit("main", "t.record", {"n": 4})
    assert len({by_path, by_text, relative, from_env}) == 4
    assert written(deployment) == 4
    monkeypatch.chdir(tmp_path)  # the same relative name now means a file that is not there
    with pytest.raises(ConfigError, match="no such file"):
        jobd.submit("main", "t.record", {"n": 5}, config="jobd.toml")
