"""The CLI as an operator uses it: real `jobd` processes, exit codes, messages."""

from __future__ import annotations

import json

from support import Deployment


def test_check_accepts_a_valid_config_and_lists_tasks(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    result = deployment.jobd("check")
    assert result.returncode == 0, result.stderr
    assert "t.record" in result.stdout


def _assert_refused(deployment: Deployment, *expected: str) -> None:
    for command in (["check"], ["start"], ["start", "--foreground"]):
        result = deployment.jobd(*command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        message = " ".join(result.stderr.split())
        assert str(deployment.config_path) in message, message
        for part in expected:
            assert part in message, message
    assert not deployment.socket.exists(), "nothing may start"
    assert not (deployment.root / "jobd.pid").exists()


def test_an_unknown_key_is_refused_with_file_key_and_reason(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "wrokers": 2}})
    _assert_refused(deployment, "daemons.main.wrokers", "unknown key")


def test_a_bad_type_is_refused_with_file_key_and_reason(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": "many"}})
    _assert_refused(deployment, "daemons.main.workers", "valid integer")


def test_a_task_path_that_does_not_import_is_refused(deployment: Deployment) -> None:
    deployment.write_config({"main": {"modules": ["testtasks", "no_such_module_here"]}})
    _assert_refused(deployment, "daemons.main.modules[1]", "cannot import 'no_such_module_here'")


def test_a_callable_path_that_does_not_resolve_is_refused(deployment: Deployment) -> None:
    deployment.write_config({"main": {"tasks": {"x.send": "testtasks:no_such_function"}}})
    _assert_refused(deployment, "daemons.main.tasks.x.send", "no callable 'no_such_function'")


def test_broken_toml_is_refused(deployment: Deployment) -> None:
    deployment.config_path.write_text("[daemons.main\nworkers = 1\n")
    _assert_refused(deployment, "not valid TOML")


def test_trigger_of_an_unknown_task_exits_2_and_writes_nothing(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    result = deployment.jobd("trigger", "main", "no.such.task")
    assert result.returncode == 2
    assert "has no task 'no.such.task'" in result.stderr and "t.record" in result.stderr
    assert deployment.store.jobs.counts() == {}


def test_trigger_with_non_json_args_exits_2_and_writes_nothing(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    assert deployment.jobd("init").returncode == 0
    for args in (["--json", "{not json"], ["--json", "[1, 2]"], ["--arg", "novalue"], ["--arg", "wrong=1"]):
        result = deployment.jobd("trigger", "main", "t.record", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "error:" in result.stderr
    assert deployment.store.jobs.counts() == {}


def test_trigger_before_the_store_is_initialised_says_to_run_init(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    result = deployment.jobd("trigger", "main", "t.record")
    assert result.returncode == 3
    assert "run `jobd init` first" in result.stderr and "Traceback" not in result.stderr


def test_trigger_of_an_unknown_daemon_names_the_known_ones(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    result = deployment.jobd("trigger", "nosuch", "t.record")
    assert result.returncode == 2 and "known daemons: main" in result.stderr


def test_trigger_prints_the_job_id_and_wait_exits_with_the_outcome(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 1}})
    deployment.start_master()
    ok = deployment.jobd("trigger", "main", "t.record", "--arg", "n=5", "--wait", timeout=60)
    assert ok.returncode == 0, ok.stderr
    job_id, result = ok.stdout.splitlines()
    assert int(job_id) > 0 and json.loads(result) == {"n": 5}
    failed = deployment.jobd("trigger", "main", "t.fail", "--wait", timeout=60)
    assert failed.returncode == 1 and "dead" in failed.stdout


def test_status_answers_from_the_store_when_the_master_is_down(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.jobd("init")
    deployment.jobd("trigger", "main", "t.record")
    result = deployment.jobd("status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["master"]["running"] is False
    assert report["daemons"]["main"]["counts"] == {"queued": 1}
    assert "not running" in deployment.jobd("status").stdout


def test_status_of_a_running_master_shows_workers_and_counts(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 2}})
    deployment.start_master()
    report = json.loads(deployment.jobd("status", "--json").stdout)
    assert report["master"]["running"] is True
    assert report["daemons"]["main"]["size"] == 2
    assert len(report["daemons"]["main"]["workers"]) == 2


def test_jobs_and_job_show_what_happened(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "max_attempts": 1}})
    deployment.start_master()
    job_id = deployment.jobd("trigger", "main", "t.fail", "--wait", timeout=60).stdout.split()[0]
    listing = deployment.jobd("jobs", "--state", "dead", "--json")
    assert [job["id"] for job in json.loads(listing.stdout)] == [int(job_id)]
    detail = deployment.jobd("job", job_id)
    assert "ValueError: boom" in detail.stdout and "Traceback" in detail.stdout
    assert deployment.jobd("job", "999999").returncode == 2
    other = deployment.jobd("jobs", "--state", "nonsense")  # any stored value may be listed: none here
    assert other.returncode == 0 and "not a jobd state" in other.stderr


def test_start_twice_is_refused_while_a_master_runs(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    deployment.start_master()
    result = deployment.jobd("start")
    assert result.returncode != 0 and "already running" in result.stderr


def test_start_detaches_and_stop_stops_it(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    started = deployment.jobd("start")
    assert started.returncode == 0, started.stderr
    assert "started (pid" in started.stdout
    assert deployment.answers()
    stopped = deployment.jobd("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert not deployment.answers()
    assert deployment.jobd("stop").returncode == 4


def test_init_says_whether_it_created_upgraded_or_found_the_store_and_what_an_upgrade_changed(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1}})
    created = deployment.jobd("init", check=True).stdout
    assert "created at schema v8" in created
    meta = deployment.store.tables["meta"]
    with deployment.store.engine.begin() as connection:  # as jobd v7 left it (v8 changes nothing a re-run cannot redo)
        connection.execute(meta.update().where(meta.c.key == "schema_version").values(value="7"))

    upgraded = deployment.jobd("init", check=True).stdout
    assert "upgraded from schema v7 to v8 in " in upgraded
    assert "v8: SQLite: jobs.unique_key and jobs.fire_key are unique through partial indexes" in " ".join(upgraded.split())
    assert "is at schema v8" in deployment.jobd("init", check=True).stdout
