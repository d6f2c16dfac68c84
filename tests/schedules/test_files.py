"""Schedule files: the documented format, and bad input rejected as a whole with file, line, entry, key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from jobd.errors import ConfigError, ExitCode
from jobd.schedules.entry import MisfirePolicy, OverlapPolicy, Schedule
from jobd.schedules.files import load_schedule_files, parse_schedule_table, parse_schedule_text
from jobd.schedules.triggers import CronRule, EveryRule

FULL = """\
# reports for the sales team
[entries.nightly-report]
daemon = "reports"
task = "reports.build_daily"
args = { kind = "sales" }
cron = "0 3 * * *"
timezone = "Europe/Warsaw"
misfire = "catch_up"
max_catch_up = 3
misfire_grace = "30s"
overlap = "replace"
jitter = "2m"
enabled = false

[entries.poll-inbox]
daemon = "mailing"
task = "mailing.poll"
every = "30s"

[entries.legacy-cleanup]
daemon = "ops"
cron = "15 4 * * sun"
shell = { command = "php /srv/app/cleanup.php --all", cwd = "/srv/app", env = { APP_ENV = "prod" }, timeout = "10m" }
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def rejection(text: str, source: str = "schedules/app.toml") -> ConfigError:
    with pytest.raises(ConfigError) as error:
        parse_schedule_text(text, source, "UTC")
    return error.value


def test_the_documented_format_loads_into_entries_keyed_by_name() -> None:
    schedule = parse_schedule_text(FULL, "schedules/app.toml", "UTC")
    assert sorted(schedule) == ["legacy-cleanup", "nightly-report", "poll-inbox"]
    report = schedule["nightly-report"]
    assert (report.daemon, report.task, dict(report.args)) == ("reports", "reports.build_daily", {"kind": "sales"})
    assert isinstance(report.rule, CronRule) and str(report.zone) == "Europe/Warsaw"
    assert (report.misfire, report.max_catch_up, report.misfire_grace) == (MisfirePolicy.CATCH_UP, 3, timedelta(seconds=30))
    assert (report.overlap, report.jitter, report.enabled) == (OverlapPolicy.REPLACE, timedelta(minutes=2), False)
    assert report.location == "schedules/app.toml:2"


def test_defaults_are_run_once_forbid_no_jitter_enabled_and_the_config_timezone() -> None:
    poll = parse_schedule_text(FULL, "s.toml", "America/New_York")["poll-inbox"]
    assert isinstance(poll.rule, EveryRule) and poll.rule.interval == timedelta(seconds=30)
    assert (poll.misfire, poll.overlap, poll.jitter, poll.enabled) == (MisfirePolicy.RUN_ONCE, OverlapPolicy.FORBID, timedelta(0), True)
    assert (poll.misfire_grace, poll.max_catch_up, str(poll.zone)) == (timedelta(seconds=5), 10, "America/New_York")


def test_a_shell_entry_declares_its_command_and_gets_its_own_task() -> None:
    schedule = parse_schedule_text(FULL, "s.toml", "UTC")
    cleanup = schedule["legacy-cleanup"]
    assert cleanup.is_shell and cleanup.task == "shell:legacy-cleanup"
    assert cleanup.shell is not None and cleanup.shell.timeout == timedelta(minutes=10)
    assert schedule.shell_tasks() == {"shell:legacy-cleanup": ("ops", cleanup.shell)}


def test_the_schedule_is_immutable() -> None:
    schedule = parse_schedule_text(FULL, "s.toml", "UTC")
    with pytest.raises(TypeError):
        schedule["x"] = schedule["poll-inbox"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        schedule["poll-inbox"].daemon = "other"  # type: ignore[misc]


def test_inline_schedules_in_jobd_toml_use_the_same_tables() -> None:
    text = '[daemons.reports]\nworkers = 2\n\n[schedules.entries.hourly]\ndaemon = "reports"\ntask = "r.h"\ncron = "0 * * * *"\n'
    import tomllib

    schedule = parse_schedule_table(tomllib.loads(text)["schedules"], "jobd.toml", default_timezone="UTC",
                                    text=text, table_path="schedules")
    assert schedule["hourly"].location == "jobd.toml:4"


def test_a_directory_loads_all_its_toml_files(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", '[entries.one]\ndaemon = "d"\ntask = "t"\nevery = "1m"\n')
    write(tmp_path, "b.toml", '[entries.two]\ndaemon = "d"\ntask = "t"\nevery = "1m"\n')
    write(tmp_path, "notes.txt", "not a schedule")
    assert sorted(load_schedule_files(tmp_path, "UTC")) == ["one", "two"]


def test_an_entry_name_used_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", '[entries.same]\ndaemon = "d"\ntask = "t"\nevery = "1m"\n')
    write(tmp_path, "b.toml", '\n[entries.same]\ndaemon = "d"\ntask = "t"\nevery = "5m"\n')
    with pytest.raises(ConfigError) as error:
        load_schedule_files(tmp_path, "UTC")
    assert error.value.source == f"{tmp_path / 'b.toml'}:2"
    assert f"{tmp_path / 'a.toml'}:1" in error.value.reason


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such schedule file"):
        load_schedule_files([tmp_path / "nope.toml"], "UTC")


ENTRY = '[entries.nightly]\ndaemon = "reports"\ntask = "reports.build"\n'


@pytest.mark.parametrize(
    ("body", "key", "line", "reason"),
    [
        ('cron = "0 3 * *"', "entry 'nightly'.cron", 4, "5 fields"),
        ('cron = "0 25 * * *"', "entry 'nightly'.cron", 4, "maximum value (23)"),
        ('cron = "0 3 * * 9"', "entry 'nightly'.cron", 4, "weekday"),
        ('cron = "0 3 * * *"\ntimezone = "Mars/Olympus"', "entry 'nightly'.timezone", 5, "unknown time zone 'Mars/Olympus'"),
        ('cron = "0 3 * * *"\nevery = "5m"', "entry 'nightly'.every", 5, "exactly one trigger"),
        ('timezone = "UTC"', "entry 'nightly'", 1, "exactly one trigger: cron, every or at (got none)"),
        ('every = "-5m"', "entry 'nightly'.every", 4, "is not a duration"),
        ('every = "0s"', "entry 'nightly'.every", 4, "more than zero"),
        ('every = -300', "entry 'nightly'.every", 4, "zero or more seconds"),
        ('cron = "0 3 * * *"\nretries = 3', "entry 'nightly'.retries", 5, "unknown key; allowed keys: daemon, task"),
        ('cron = "0 3 * * *"\nmisfire = "sometimes"', "entry 'nightly'.misfire", 5, "'skip', 'run_once' or 'catch_up'"),
        ('cron = "0 3 * * *"\noverlap = "queue"', "entry 'nightly'.overlap", 5, "'forbid', 'allow' or 'replace'"),
        ('cron = "0 3 * * *"\nmax_catch_up = 0', "entry 'nightly'.max_catch_up", 5, "greater than or equal to 1"),
        ('cron = "0 3 * * *"\nmax_attempts = 0', "entry 'nightly'.max_attempts", 5, "greater than or equal to 1"),
        ('cron = "0 3 * * *"\nenabled = "yes"', "entry 'nightly'.enabled", 5, "valid boolean"),
        ('cron = "0 3 * * *"\njitter = "soon"', "entry 'nightly'.jitter", 5, "'soon' is not a duration"),
        ('at = "tomorrow"', "entry 'nightly'.at", 4, "ISO date"),
        ('cron = "0 3 * * *"\nshell = { command = "true" }', "entry 'nightly'.task", 3, "exactly one of task"),
    ],
)
def test_bad_input_is_rejected_naming_file_line_entry_and_key(body: str, key: str, line: int | None, reason: str) -> None:
    error = rejection(ENTRY + body + "\n")
    assert error.key == key
    assert error.source == (f"schedules/app.toml:{line}" if line else "schedules/app.toml")
    assert reason in error.reason
    assert error.exit_code == ExitCode.BAD_INPUT


def test_one_bad_entry_rejects_the_whole_file() -> None:
    text = FULL + '\n[entries.broken]\ndaemon = "d"\ntask = "t"\ncron = "nope"\n'
    assert rejection(text).key == "entry 'broken'.cron"


def test_a_shell_entry_takes_no_args_since_commands_never_come_from_arguments() -> None:
    text = '[entries.x]\ndaemon = "d"\ncron = "* * * * *"\nargs = { file = "/etc/passwd" }\nshell = { command = "cat" }\n'
    error = rejection(text)
    assert error.key == "entry 'x'.args" and "no args" in error.reason


def test_nested_keys_are_named_in_full() -> None:
    text = '[entries.x]\ndaemon = "d"\ncron = "* * * * *"\nshell = { command = "true", group = "root" }\n'
    assert rejection(text).key == "entry 'x'.shell.group"


def test_invalid_toml_reports_its_line() -> None:
    error = rejection('[entries.x]\ndaemon = "d\n')
    assert error.key is None and "line 2" in error.reason


def test_unknown_top_level_tables_and_bad_names_are_refused() -> None:
    assert rejection('[entry.x]\ndaemon = "d"\n').key == "entry"
    assert "entry name" in rejection('[entries."bad name@x"]\ndaemon = "d"\ntask = "t"\nevery = "1m"\n').reason


def test_an_unknown_default_timezone_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown time zone"):
        parse_schedule_text(ENTRY + 'every = "1m"\n', "s.toml", "Nowhere/Town")


def test_references_to_daemons_and_tasks_are_checked_against_the_config() -> None:
    schedule = parse_schedule_text(FULL, "s.toml", "UTC")
    schedule.check_references({"reports": {"reports.build_daily"}, "mailing": {"mailing.poll"}, "ops": set()})
    with pytest.raises(ConfigError) as error:
        schedule.check_references({"reports": set(), "mailing": {"mailing.poll"}, "ops": set()})
    assert error.value.key == "entry 'nightly-report'.task" and error.value.source == "s.toml:2"
    with pytest.raises(ConfigError, match="no daemon named 'ops'"):
        schedule.check_references({"reports": {"reports.build_daily"}, "mailing": {"mailing.poll"}})


def test_merging_schedules_refuses_duplicate_names() -> None:
    one = parse_schedule_text(ENTRY + 'every = "1m"\n', "a.toml", "UTC")
    with pytest.raises(ConfigError, match="already used"):
        one.merged_with(parse_schedule_text(ENTRY + 'every = "2m"\n', "b.toml", "UTC"))
    assert len(Schedule()) == 0


def test_entries_compare_by_definition_so_a_reload_can_spot_what_changed() -> None:
    first = parse_schedule_text(FULL, "s.toml", "UTC")
    again = parse_schedule_text("\n\n" + FULL, "moved.toml", "UTC")
    assert dict(first) == dict(again)
    changed = parse_schedule_text(FULL.replace('cron = "0 3 * * *"', 'cron = "0 4 * * *"'), "s.toml", "UTC")
    assert changed["nightly-report"] != first["nightly-report"]
    assert changed["poll-inbox"] == first["poll-inbox"]
