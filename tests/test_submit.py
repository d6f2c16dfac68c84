"""jobd.submit from an application: bad intents are refused before anything is written."""

from __future__ import annotations

import datetime as dt
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
