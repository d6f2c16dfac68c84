"""`jobd jobs` and `jobd job` answer from the running master and a remembered config, loading no heavy library.

A config the full validation accepted is remembered by a fingerprint
(``jobd.config_digest``); a changed or invalid file is validated again with
the same errors. With a master running, the jobs come from its store over the
control socket (``list_jobs``, ``show_job``), and the command imports neither
SQLAlchemy nor pydantic; without one, it reads the store through the database driver (still neither),
and both say the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobd.config import load_config
from jobd.config_digest import ConfigDigest, config_digest, digest_folder
from jobd.control import client
from jobd.errors import ConfigError, ProtocolError, UnknownJob
from jobd.store import NewJob
from support import Deployment

#: Runs the CLI as ``python -m jobd.cli.app`` does, then writes the names of the modules it loaded.
PROBE = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["jobd", *sys.argv[2:]]
from jobd.cli.app import main
main()
"""
HEAVY = ("sqlalchemy", "pydantic")


def loaded_by(deployment: Deployment, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """A CLI run and the top-level packages it imported."""
    modules = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(modules), *args], env=deployment.env(), cwd=deployment.root,
        capture_output=True, text=True, timeout=120,
    )
    return result, {name.split(".")[0] for name in json.loads(modules.read_text())}


def loads_nothing_heavy(deployment: Deployment, tmp_path: Path, *commands: tuple[str, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Run each command (after one that validates the config and remembers its digest): each must succeed
    without importing SQLAlchemy or pydantic. Their results, in order."""
    deployment.jobd(*commands[0], check=True)  # the first command validates the new config
    results = []
    for args in commands:
        result, loaded = loaded_by(deployment, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert loaded.isdisjoint(HEAVY), (args, sorted(loaded & set(HEAVY)))
        results.append(result)
    return results


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Digests in a folder of this test's (the CLI processes inherit the environment)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_jobs_and_job_with_a_master_running_load_neither_sqlalchemy_nor_pydantic(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    job_id = deployment.jobd("trigger", "main", "t.record", "--wait", timeout=60).stdout.split()[0]
    deployment.jobd("jobs", "-n", "5", check=True)  # the first command validates the new config
    for args in (("jobs", "-n", "5"), ("jobs", "-n", "5", "--json"), ("job", job_id), ("job", job_id, "--json")):
        result, loaded = loaded_by(deployment, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert job_id in result.stdout
        assert loaded.isdisjoint(HEAVY), (args, sorted(loaded & set(HEAVY)))


def test_jobs_and_job_with_no_master_read_the_store_through_the_driver_alone(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    job_id = deployment.jobd("trigger", "main", "t.record", check=True).stdout.split()[0]
    deployment.jobd("jobs", "-n", "5", check=True)  # the first command validates the new config
    for args in (("jobs", "-n", "5"), ("job", job_id, "--json")):
        result, loaded = loaded_by(deployment, tmp_path, *args)
        assert result.returncode == 0, result.stderr
        assert job_id in result.stdout
        assert loaded.isdisjoint(HEAVY), (args, sorted(loaded & set(HEAVY)))  # the store read with the digest's driver arguments


def test_batches_and_batch_read_the_store_through_the_driver_alone(deployment: Deployment, tmp_path: Path, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    batch_id = deployment.store.batches.create("mailing")
    commands = (("batches",), ("batches", "--json"), ("batch", str(batch_id)), ("batch", str(batch_id), "--json"))
    assert all("mailing" in result.stdout for result in loads_nothing_heavy(deployment, tmp_path, *commands))
    missing = deployment.jobd("batch", "424242")
    assert missing.returncode == 2 and "no batch has id 424242" in missing.stderr


def test_logs_read_the_store_through_the_driver_alone_and_say_the_same(deployment: Deployment, tmp_path: Path, own_cache: Path) -> None:
    from jobd.store.job_logs import JobLogLine

    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init", check=True)
    job_id = deployment.store.jobs.insert(NewJob(daemon="main", task="t.record", args={}))
    other = deployment.store.jobs.insert(NewJob(daemon="main", task="t.record", args={}))
    deployment.store.job_logs.append([
        JobLogLine(job_id, 1, 1_000.0, "INFO", "t.record", 42, "first line"),
        JobLogLine(other, 1, 1_000.5, "INFO", "t.record", 42, "another job's line"),
        JobLogLine(job_id, 1, 1_001.0, "ERROR", "t.record", 42, "Traceback: it failed"),
    ])
    loads_nothing_heavy(deployment, tmp_path, ("logs", str(job_id)), ("logs", "--json"), ("logs", "-n", "1"))
    mine = deployment.jobd("logs", str(job_id), check=True).stdout.splitlines()
    assert [line.split(": ", 1)[1] for line in mine] == ["first line", "Traceback: it failed"]
    assert [json.loads(line)["message"] for line in deployment.jobd("logs", "--json", check=True).stdout.splitlines()] == [
        "first line", "another job's line", "Traceback: it failed"]
    assert deployment.jobd("logs", "-n", "1", check=True).stdout.strip().endswith("t.record: Traceback: it failed")
    unknown = deployment.jobd("logs", "999999")
    assert unknown.returncode == 2 and "no job with id 999999" in unknown.stderr


def test_with_no_master_a_store_without_jobd_tables_says_to_run_init(
    deployment: Deployment, tmp_path: Path, own_cache: Path,
) -> None:
    deployment.write_config({"main": {"workers": 1}})
    store_file = Path(deployment.store_url.removeprefix("sqlite:///"))
    store_file.unlink(missing_ok=True)
    store_file.write_bytes(b"")  # a file, but no jobd tables in it
    for args in (("jobs",), ("job", "1"), ("logs", "1"), ("batches",)):
        result = deployment.jobd(*args)
        assert result.returncode == 3, result.stderr
        assert "the store has no jobd tables" in result.stderr and "run `jobd init` first" in result.stderr


def test_the_master_and_the_store_list_the_same_jobs(deployment: Deployment, own_cache: Path) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 1}})
    deployment.start_master()
    failed = deployment.jobd("trigger", "main", "t.fail", "--wait", timeout=60).stdout.split()[0]
    deployment.jobd("trigger", "main", "t.record", "--wait", timeout=60)
    from_master = [deployment.jobd("jobs", "--json").stdout, deployment.jobd("job", failed, "--json").stdout,
                   deployment.jobd("jobs", "--state", "nonsense").stderr]
    assert deployment.jobd("job", "999999").stderr.strip() == "error: no job with id 999999"
    deployment.jobd("stop", check=True)
    from_store = [deployment.jobd("jobs", "--json").stdout, deployment.jobd("job", failed, "--json").stdout,
                  deployment.jobd("jobs", "--state", "nonsense").stderr]
    assert from_master == from_store
    assert len(json.loads(from_master[0])) == 2 and "not a jobd state" in from_master[2]
    assert deployment.jobd("job", "999999").stderr.strip() == "error: no job with id 999999"


@pytest.mark.parametrize("args, problem", [
    ({"limit": 0}, "limit must be an integer from 1 to 10000"),
    ({"limit": "5"}, "limit must be an integer"),
    ({"limit": True}, "limit must be an integer"),
    ({"states": "dead"}, "states must be a list"),
    ({"states": ["x" * 201]}, "states must be a list"),
    ({"daemon": 3}, "daemon must be a non-empty string"),
    ({"task": ""}, "task must be a non-empty string"),
])
def test_list_jobs_refuses_malformed_arguments(deployment: Deployment, own_cache: Path, args: dict[str, object], problem: str) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    with pytest.raises(ProtocolError, match=problem):
        client.call(deployment.socket, "list_jobs", args)
    with pytest.raises(ProtocolError, match="id must be an integer"):
        client.call(deployment.socket, "show_job", {"id": "1"})
    with pytest.raises(UnknownJob):
        client.call(deployment.socket, "show_job", {"id": 424242})


def test_a_digest_holds_the_validated_settings_and_is_made_only_for_a_valid_file(tmp_path: Path, own_cache: Path) -> None:
    config = tmp_path / "jobd.toml"
    config.write_text('store = "sqlite:///jobs.db"\n[daemons.main]\nmodules = ["m"]\n')
    assert config_digest(config) == ConfigDigest.of(load_config(config, with_schedule=False))
    assert len(list(digest_folder().glob("*.json"))) == 1
    assert config_digest(config).store == f"sqlite:///{tmp_path / 'jobs.db'}"  # read back: the same

    config.write_text('store = "sqlite:///jobs.db"\n[daemons.main]\nmodules = ["m"]\nworkers = "many"\n')
    with pytest.raises(ConfigError) as from_digest:
        config_digest(config)
    with pytest.raises(ConfigError) as from_models:
        load_config(config, with_schedule=False)
    assert str(from_digest.value) == str(from_models.value)
    assert len(list(digest_folder().glob("*.json"))) == 1  # nothing remembered for an invalid file

    config.write_text('store = "sqlite:///other.db"\nsocket = "s.sock"\n[daemons.b]\nmodules = ["m"]\n[daemons.a]\nmodules = ["m"]\n')
    digest = config_digest(config)
    assert (digest.store, digest.socket, digest.daemons) == (f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "s.sock", ("b", "a"))


def test_a_missing_config_is_reported_as_by_the_full_load(tmp_path: Path, own_cache: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        config_digest(tmp_path / "absent.toml")
