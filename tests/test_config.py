"""jobd.toml validation: every problem names the file, the key and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.config import load_config, parse_config
from jobd.errors import ConfigError

SOURCE = Path("/etc/jobd/jobd.toml")


def test_defaults_give_a_runnable_embedded_config() -> None:
    config = parse_config("[daemons.mailing]\nmodules = ['app.mail']\n", SOURCE)
    assert config.store == "sqlite:////etc/jobd/jobd.db"
    assert config.socket == Path("/etc/jobd/jobd.sock")
    assert config.daemons["mailing"].workers == 2


def test_relative_paths_resolve_next_to_the_config_file() -> None:
    config = parse_config('socket = "run/j.sock"\npython_path = ["src"]\nstore = "sqlite:///var/j.db"\n', SOURCE)
    assert config.socket == Path("/etc/jobd/run/j.sock")
    assert config.python_path == [Path("/etc/jobd/src")]
    assert config.store == "sqlite:////etc/jobd/var/j.db"


@pytest.mark.parametrize(
    "text, key, reason",
    [
        ("[daemons.mailing]\nworkrs = 2\n", "daemons.mailing.workrs", "unknown key"),
        ("[daemons.mailing]\nworkers = 'two'\n", "daemons.mailing.workers", "valid integer"),
        ("[daemons.mailing]\nworkers = -1\n", "daemons.mailing.workers", "greater than or equal to 0"),
        ("[daemons.mailing]\ntimeout = '5 minutes'\n", "daemons.mailing.timeout", "not a duration"),
        ("[daemons.Mailing]\n", "daemons", "lower-case"),
        ("timezone = 'Mars/Olympus'\n", "timezone", "IANA time zone"),
        ("memcached = ['localhost']\n", "memcached", "host:port"),
        ("[daemons.m]\nmodules = ['not a module']\n", "daemons.m.modules", "module path"),
        ("[daemons.m]\ntasks = { 'x' = 'nocolon' }\n", "daemons.m.tasks", "callable path"),
        ("log_level = 'LOUD'\n", "log_level", "DEBUG, INFO"),
        (f"socket = '/run/{'x' * 120}.sock'\n", "socket", "a Unix socket path holds at most 107"),
    ],
)
def test_invalid_values_name_file_key_and_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, SOURCE)
    assert raised.value.source == str(SOURCE)
    assert raised.value.key == key
    assert reason in str(raised.value)


def test_a_missing_config_file_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass --config or set JOBD_CONFIG"):
        load_config(tmp_path / "nope.toml")


def test_a_config_or_schedule_file_that_is_not_utf8_names_the_line_of_its_first_bad_byte(tmp_path: Path) -> None:
    config = tmp_path / "jobd.toml"
    config.write_bytes(b'store = "sqlite:///jobd.db"\n# r\xe9sum\xe9 of the nightly jobs\n')
    with pytest.raises(ConfigError, match=r"jobd.toml: line 2: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        load_config(config)
    config.write_text('store = "sqlite:///jobd.db"\nschedule_dir = "schedules"\n[daemons.main]\nmodules = []\n')
    (tmp_path / "schedules").mkdir()
    (tmp_path / "schedules" / "nightly.toml").write_bytes(b"# \xff\n")
    with pytest.raises(ConfigError, match=r"nightly.toml: line 1: not UTF-8 text \(byte 0xff\)"):
        load_config(config)


def test_config_is_found_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "custom.toml"
    path.write_text("[daemons.a]\n")
    monkeypatch.setenv("JOBD_CONFIG", str(path))
    assert load_config().source == path


def test_rate_limits_per_daemon_and_task_with_bursts_defaulting_to_a_seconds_worth() -> None:
    config = parse_config(
        "[daemons.mailing]\nrate_limit = '50/s'\ntask_rate_limits = { 'mail.send' = '5/m', 'sms.send' = '2/s' }\n"
        "task_rate_bursts = { 'sms.send' = 10 }\n",
        SOURCE,
    )
    limits = config.daemons["mailing"].rate_limits()
    assert limits.daemon is not None and (limits.daemon.per_second, limits.daemon.burst) == (50.0, 50.0)
    assert (limits.tasks["mail.send"].per_second, limits.tasks["mail.send"].burst) == (pytest.approx(5 / 60), 1.0)
    assert limits.tasks["sms.send"].burst == 10.0
    assert not parse_config("[daemons.m]\n", SOURCE).daemons["m"].rate_limits().active


@pytest.mark.parametrize(
    "text, key, reason",
    [
        ("[daemons.m]\nrate_limit = '50'\n", "daemons.m.rate_limit", "'50' is not a rate"),
        ("[daemons.m]\nrate_limit = '50/d'\n", "daemons.m.rate_limit", "per second, minute or hour"),
        ("[daemons.m]\nrate_limit = '0/s'\n", "daemons.m.rate_limit", "more than zero"),
        ("[daemons.m]\nrate_limit = 50\n", "daemons.m.rate_limit", "valid string"),
        ("[daemons.m]\nrate_limit = '5/s'\nrate_burst = 0\n", "daemons.m.rate_burst", "greater than or equal to 1"),
        ("[daemons.m]\nrate_burst = 5\n", "daemons.m.rate_burst", "rate_burst needs a rate_limit"),
        ("[daemons.m]\ntask_rate_limits = { 'a.b' = 'often' }\n", "daemons.m.task_rate_limits", "task 'a.b': 'often' is not a rate"),
        ("[daemons.m]\ntask_rate_bursts = { 'a.b' = 3 }\n", "daemons.m.task_rate_bursts", "'a.b' has no rate in task_rate_limits"),
        ("[daemons.m]\ntask_rate_limits = { 'a.b' = '1/s' }\ntask_rate_bursts = { 'a.b' = 0 }\n",
         "daemons.m.task_rate_bursts", "at least 1"),
        ("[daemons.m]\nrate_limit = '20/s'\nrate_burst = 5\n", "daemons.m.rate_burst", "less than one second's worth of 20/s"),
        ("[daemons.m]\ntask_rate_limits = { 'a.b' = '2.5/s' }\ntask_rate_bursts = { 'a.b' = 2 }\n",
         "daemons.m.task_rate_bursts", "task 'a.b': a burst of 2 is less than one second's worth of 2.5/s"),
    ],
)
def test_bad_rate_limits_name_file_key_and_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, SOURCE)
    assert raised.value.source == str(SOURCE)
    assert raised.value.key == key
    assert reason in str(raised.value)
