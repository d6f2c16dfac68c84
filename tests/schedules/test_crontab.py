"""Crontab import: the imported entries fire exactly when cron would, and nothing is dropped silently."""

from __future__ import annotations

from datetime import datetime

from croniter import croniter

from jobd.schedules.crontab import import_crontab
from jobd.schedules.files import parse_schedule_text
from jobd.schedules.triggers import CronRule, next_fire_times

from .conftest import UTC, utc

# Twenty schedule lines covering macros, ranges, steps, lists, names, Sunday as 0 and 7,
# and the day-of-month OR day-of-week rule; plus env, comments and lines cron has but jobd cannot run.
CRONTAB = r"""
# m h dom mon dow command
SHELL=/bin/sh
PATH=/usr/local/bin:/usr/bin:/bin
MAILTO=ops@example.com

*/5 * * * * /usr/bin/php /srv/app/artisan queue:work --once
0 * * * * /srv/bin/rotate-logs.sh
30 2 * * * /srv/bin/backup.sh --full > /var/log/backup.log 2>&1
15 9 * * 1-5 /srv/bin/standup-reminder
0 0 1,15 * * /srv/bin/billing run
0 22 * * 0 /srv/bin/weekly-digest
0 22 * * 7 /srv/bin/weekly-digest --sunday-as-7
45 6 * jan-mar mon-fri /srv/bin/winter-report
0 0 13 * fri /srv/bin/superstition
10-20/5 8-18/2 * * * /srv/bin/ping-partners
0 12 */2 * * /srv/bin/every-other-day
0 0 * * */2 /srv/bin/sun-tue-thu-sat
5 4 1 */3 * /srv/bin/quarterly
0 3 L * * /srv/bin/not-cron-syntax
APP_ENV=production
@daily /srv/bin/nightly-cleanup
@hourly /srv/bin/hourly-sync
@weekly /srv/bin/weekly-report
@monthly /srv/bin/monthly-invoices
@yearly /srv/bin/happy-new-year
@annually /srv/bin/annual-audit
@midnight /srv/bin/midnight-cleanup
0 0 */2 * 1 /srv/bin/odd-days-and-mondays-vixie
@reboot /srv/bin/warm-caches
0 8 * * * date +\%F >> /var/log/dates
0 9 * * * mail -s "report" ops%Body of the mail%
61 * * * * /srv/bin/bad-minute
0 0 * * * 
"""


def test_twenty_varied_lines_import_to_the_fire_times_cron_would_produce() -> None:
    result = import_crontab(CRONTAB, daemon="legacy", source="/var/spool/cron/crontabs/www-data")
    schedule = parse_schedule_text(result.toml, "imported.toml", "UTC")
    assert len(schedule) == 22  # 20 varied lines, the Vixie '*/2' case and a literal \%
    start = datetime(2025, 1, 1, 0, 0, 7, tzinfo=UTC)
    for entry in schedule.values():
        assert isinstance(entry.rule, CronRule)
        expression = entry.rule.calendar.expression
        # implement_cron_bug: like Vixie cron and cronie, a field starting with '*' is "unrestricted"
        expected = croniter(expression, start, implement_cron_bug=True)
        cron_times = [expected.get_next(datetime) for _ in range(50)]
        assert next_fire_times(entry, start, 50) == cron_times, f"{entry.name}: {expression}"


def test_lines_that_cannot_mean_the_same_in_jobd_are_reported_with_line_number_and_reason() -> None:
    result = import_crontab(CRONTAB, daemon="legacy", source="www-data")
    reported = {line.line: (line.text, line.reason) for line in result.unconverted}
    lines = CRONTAB.splitlines()
    def number_of(fragment: str) -> int:
        return next(number for number, line in enumerate(lines, start=1) if fragment in line)
    assert number_of("MAILTO") not in reported  # kept with a note: see the alert hook
    assert "@reboot" in reported[number_of("@reboot")][1]
    assert "unescaped '%'" in reported[number_of("mail -s")][1]
    assert "maximum value" in reported[number_of("bad-minute")][1]
    assert "Unrecognized expression" in reported[number_of("not-cron-syntax")][1]
    assert "five time fields and a command" in reported[len(lines)][1]
    assert len(result.unconverted) == 5
    assert reported[number_of("@reboot")][0] == "@reboot /srv/bin/warm-caches"


def test_imported_entries_run_the_command_line_with_the_environment_set_above_them() -> None:
    result = import_crontab(CRONTAB, daemon="legacy", source="www-data")
    schedule = parse_schedule_text(result.toml, "imported.toml", "UTC")
    first = schedule[result.entry_names[0]]
    assert first.daemon == "legacy" and first.is_shell and first.shell is not None
    assert first.shell.command == "/usr/bin/php /srv/app/artisan queue:work --once"
    assert first.shell.env == {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    cleanup = next(entry for entry in schedule.values() if entry.shell and "nightly-cleanup" in str(entry.shell.command))
    assert cleanup.shell is not None and cleanup.shell.env["APP_ENV"] == "production"
    dates = next(entry for entry in schedule.values() if entry.shell and "date" in str(entry.shell.command))
    assert dates.shell is not None and dates.shell.command == "date +%F >> /var/log/dates"  # \% is a literal %


def test_imported_entries_keep_crons_misfire_behaviour_and_say_so() -> None:
    result = import_crontab("0 3 * * * /srv/bin/x\n", daemon="legacy", source="www-data")
    entry = parse_schedule_text(result.toml, "imported.toml", "UTC")[result.entry_names[0]]
    assert entry.misfire.value == "skip"
    assert 'misfire = "skip"' in result.toml and "forbid" in result.toml


def test_entry_names_are_stable_readable_and_valid() -> None:
    result = import_crontab("0 3 * * * /srv/bin/backup.sh\n@daily php /srv/artisan cleanup\n", daemon="d", source="/etc/crontabs/www-data")
    assert result.entry_names == ("www-data-1-backup", "www-data-2-artisan")
    again = import_crontab("0 3 * * * /srv/bin/backup.sh\n@daily php /srv/artisan cleanup\n", daemon="d", source="/etc/crontabs/www-data")
    assert again.toml == result.toml


def test_cron_tz_sets_the_timezone_of_the_entries_below_it() -> None:
    text = "0 9 * * * /srv/a\nCRON_TZ=America/New_York\n0 9 * * * /srv/b\nCRON_TZ=Nowhere/Else\n"
    result = import_crontab(text, daemon="d", source="tz")
    schedule = parse_schedule_text(result.toml, "imported.toml", "Europe/Warsaw")
    a, b = (schedule[name] for name in result.entry_names)
    assert str(a.zone) == "Europe/Warsaw" and str(b.zone) == "America/New_York"
    assert next_fire_times(b, utc(2025, 1, 1), 1) == [utc(2025, 1, 1, 14)]
    assert [line.line for line in result.unconverted] == [4]


def test_a_relative_shell_is_reported() -> None:
    result = import_crontab("SHELL=bash\n0 3 * * * echo {a,b}\n", daemon="d", source="x")
    assert result.unconverted[0].line == 1 and "absolute path" in result.unconverted[0].reason


def test_odd_characters_in_commands_survive_the_toml_round_trip() -> None:
    command = 'echo "quoted" \'single\' back\\slash tab\there ünïcödé $HOME'
    result = import_crontab(f"0 3 * * * {command}\n", daemon="d", source="x")
    entry = parse_schedule_text(result.toml, "imported.toml", "UTC")[result.entry_names[0]]
    assert entry.shell is not None and entry.shell.command == command


def test_an_empty_crontab_gives_an_empty_valid_schedule() -> None:
    result = import_crontab("# nothing\n\n", daemon="d", source="x")
    assert result.entry_names == () and result.unconverted == ()
    assert len(parse_schedule_text(result.toml, "imported.toml", "UTC")) == 0


USERS = {"root", "www-data"}.__contains__  # the accounts of an imagined host


def test_imported_entries_run_once_per_tick_like_cron_unless_retries_are_asked_for() -> None:
    text = "0 3 * * * /srv/bin/invoice.sh\n"
    entry = parse_schedule_text(import_crontab(text, daemon="d", source="x").toml, "i.toml", "UTC")["x-1-invoice"]
    assert entry.max_attempts == 1
    again = parse_schedule_text(import_crontab(text, daemon="d", source="x", retries=2).toml, "i.toml", "UTC")
    assert again["x-1-invoice"].max_attempts == 3


SYSTEM_CRONTAB = """\
SHELL=/bin/sh
MAILTO=""
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
30 2 * * *  www-data /srv/app/bin/invoice.sh --all
@daily root /usr/local/bin/rotate
"""


def test_a_system_crontab_keeps_each_lines_user_instead_of_running_the_user_as_a_command() -> None:
    for source, system in (("/etc/crontab", None), ("/etc/cron.d/app", None), ("app.cron", True)):
        result = import_crontab(SYSTEM_CRONTAB, daemon="d", source=source, system=system, is_user=USERS)
        schedule = parse_schedule_text(result.toml, "i.toml", "UTC")
        shells = [(entry.shell.user, entry.shell.command) for entry in schedule.values() if entry.shell]
        assert shells == [
            ("root", "cd / && run-parts --report /etc/cron.hourly"),
            ("www-data", "/srv/app/bin/invoice.sh --all"),
            ("root", "/usr/local/bin/rotate"),
        ], source
        assert result.system and result.users == ("root", "www-data") and result.unconverted == ()
        assert result.notes == ()  # MAILTO="" is "no mail": nothing to say


def test_a_system_crontab_is_recognised_by_its_shape_and_the_guess_is_noted() -> None:
    result = import_crontab(SYSTEM_CRONTAB, daemon="d", source="copied-from-server", is_user=USERS)
    assert result.system and "user column" in result.notes[0].note
    as_user = import_crontab(SYSTEM_CRONTAB, daemon="d", source="copied-from-server", system=False, is_user=USERS)
    assert not as_user.system and as_user.users == ()
    assert {note.line for note in as_user.notes} == {3, 4, 5} and "--system" in as_user.notes[0].note


def test_a_system_line_without_a_command_after_the_user_is_reported() -> None:
    result = import_crontab("0 3 * * * root\n", daemon="d", source="/etc/crontab", is_user=USERS)
    assert "a user and a command" in result.unconverted[0].reason


def test_shell_is_honoured_for_the_entries_below_it() -> None:
    text = "0 3 * * * echo sh\nSHELL=/bin/bash\n0 4 * * * echo {a,b}\nSHELL=/bin/sh\n0 5 * * * echo sh-again\n"
    result = import_crontab(text, daemon="d", source="x")
    assert result.unconverted == ()
    entries = parse_schedule_text(result.toml, "i.toml", "UTC")
    assert [entry.shell.interpreter for entry in entries.values() if entry.shell] == [None, "/bin/bash", None]


def test_mailto_with_an_address_points_at_the_alert_hook_and_an_empty_one_is_silent() -> None:
    result = import_crontab("MAILTO=ops@example.com\n0 3 * * * /srv/bin/x\n", daemon="d", source="x")
    assert result.unconverted == ()
    (note,) = result.notes
    assert note.line == 1 and "alert_command" in note.note and "ops@example.com" in note.note
    assert "# MAILTO=ops@example.com" in result.toml
    silent = import_crontab('MAILTO=""\n0 3 * * * /srv/bin/x\n', daemon="d", source="x")
    assert silent.unconverted == () and silent.notes == () and "MAILTO" not in silent.toml
