"""Schedule files: ``schedules/*.toml`` next to the config, or ``[schedules]`` in jobd.toml.

The format (documented in docs/schedules.md) is one table per entry, keyed
by the entry's name, so every entry has a stable id and TOML itself rejects
two entries of the same name in one file::

    [entries.nightly-report]
    daemon = "reports"
    task = "reports.build_daily"
    cron = "0 3 * * *"

A file is accepted or rejected as a whole: the first problem raises
``ConfigError(file[:line], "entry 'NAME'.key", reason)`` and nothing of the
file is used. Names must be unique across all files loaded together.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jobd.errors import ConfigError
from jobd.text_files import NotUtf8, read_utf8
from jobd.durations import parse_whole_seconds
from jobd.schedules.entry import (
    SHELL_TASK_PREFIX,
    MisfirePolicy,
    OverlapPolicy,
    Schedule,
    ScheduleEntry,
)
from jobd.schedules.triggers import Rule, at_rule, cron_rule, every_rule
from jobd.shelltask import ShellTaskSpec

#: Defaults, in one place (docs/schedules.md quotes them).
MisfireName = Literal["skip", "run_once", "catch_up"]
OverlapName = Literal["forbid", "allow", "replace"]
DEFAULT_MISFIRE: MisfireName = "run_once"
DEFAULT_MISFIRE_GRACE = "5s"
DEFAULT_MAX_CATCH_UP = 10
MAX_CATCH_UP_LIMIT = 1000
MAX_ATTEMPTS_LIMIT = 1000  # as a daemon's max_attempts in jobd.toml
DEFAULT_OVERLAP: OverlapName = "forbid"

#: Entry names end up in fire keys (``NAME@TIME``), CLI arguments and log lines.
ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")
_TRIGGER_KEYS = ("cron", "every", "at")


class EntryModel(BaseModel):
    """The shape of one entry as written in TOML; ``build_entry`` gives it meaning."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    daemon: str = Field(min_length=1)
    task: str | None = Field(default=None, min_length=1)
    shell: ShellTaskSpec | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    cron: str | None = None
    every: str | int | None = None
    at: datetime | str | None = None
    timezone: str | None = None
    misfire: MisfireName = DEFAULT_MISFIRE
    misfire_grace: str | int = DEFAULT_MISFIRE_GRACE
    max_catch_up: int = Field(default=DEFAULT_MAX_CATCH_UP, ge=1, le=MAX_CATCH_UP_LIMIT)
    overlap: OverlapName = DEFAULT_OVERLAP
    jitter: str | int = 0
    enabled: bool = True
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS_LIMIT)


def load_schedule_files(
    paths_or_dir: str | Path | Iterable[str | Path], default_timezone: str
) -> Schedule:
    """Load every schedule file given (a directory means its ``*.toml``, in name order).

    Raises ``ConfigError`` for the first invalid file, naming file, line,
    entry and key; or for an entry name used in two files.
    """
    schedule = Schedule()
    for path in _schedule_paths(paths_or_dir):
        try:
            text = read_utf8(path)
        except NotUtf8 as error:
            raise ConfigError(str(path), None, str(error)) from None
        except OSError as error:
            raise ConfigError(str(path), None, f"cannot read the schedule file: {error.strerror}") from None
        schedule = schedule.merged_with(parse_schedule_text(text, str(path), default_timezone))
    return schedule


def parse_schedule_text(text: str, source: str, default_timezone: str) -> Schedule:
    """Parse one schedule file's text (``source`` names it in errors)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(source, None, f"not valid TOML: {error}") from None
    return parse_schedule_table(data, source, default_timezone=default_timezone, text=text)


def parse_schedule_table(
    data: Mapping[str, Any],
    source: str,
    *,
    default_timezone: str,
    text: str | None = None,
    table_path: str = "",
) -> Schedule:
    """Build a schedule from an already-parsed table (a file, or jobd.toml's ``[schedules]``).

    ``text`` (the file's TOML) lets errors carry a line number; ``table_path``
    is where the table sits in it (``"schedules"`` for the inline case).
    """
    zone_default = _zone(default_timezone, source, "default timezone")
    unknown = sorted(set(data) - {"entries"})
    if unknown:
        raise ConfigError(source, _join(table_path, unknown[0]),
                          "unknown key; a schedule holds only [entries.NAME] tables")
    entries_table = data.get("entries", {})
    if not isinstance(entries_table, Mapping):
        raise ConfigError(source, _join(table_path, "entries"), "must be a table of entries keyed by name")
    header = _join(table_path, "entries")
    entries = []
    for name, raw in entries_table.items():
        line = _header_line(text, header, name)
        entries.append(build_entry(name, raw, source=source, line=line, default_zone=zone_default, text=text))
    return Schedule(entries)


def build_entry(
    name: str,
    raw: Any,
    *,
    source: str,
    default_zone: ZoneInfo,
    line: int | None = None,
    text: str | None = None,
) -> ScheduleEntry:
    """Validate one entry's table and compile it; ``ConfigError`` names the key at fault."""

    def fail(key: str | None, reason: str) -> ConfigError:
        key_line = _key_line(text, line, key.split(".")[0]) if key else None
        where = f"{source}:{key_line or line}" if (key_line or line) else source
        return ConfigError(where, f"entry '{name}'" + (f".{key}" if key else ""), reason)

    if not ENTRY_NAME.fullmatch(name):
        raise fail(None, "an entry name is 1-200 letters, digits and _ . : - (starting with a letter or digit)")
    if not isinstance(raw, Mapping):
        raise fail(None, "must be a table (e.g. [entries.NAME])")
    try:
        model = EntryModel.model_validate(raw)
    except ValidationError as error:
        key, reason = _first_problem(error)
        raise fail(key, reason) from None

    given = [key for key in _TRIGGER_KEYS if getattr(model, key) is not None]
    if len(given) != 1:
        which = " and ".join(given) if given else "none"
        raise fail(given[1] if len(given) > 1 else None,
                   f"give exactly one trigger: cron, every or at (got {which})")
    if (model.task is None) == (model.shell is None):
        raise fail("task" if model.task else None,
                   "give exactly one of task (a registered task) or shell (a command line)")
    if model.shell is not None and model.args:
        raise fail("args", "shell entries take no args: the command is fixed in config")

    zone = default_zone
    if model.timezone is not None:
        try:
            zone = _zone(model.timezone, source, "timezone")
        except ConfigError as error:
            raise fail("timezone", error.reason) from None
    try:
        rule: Rule
        if model.cron is not None:
            rule = cron_rule(model.cron)
        elif model.every is not None:
            rule = every_rule(parse_whole_seconds(model.every, allow_zero=False))
        else:
            rule = at_rule(_moment(model.at), zone)
    except ValueError as error:
        raise fail(given[0], str(error)) from None
    durations: dict[str, timedelta] = {}
    for key in ("misfire_grace", "jitter"):
        try:
            durations[key] = parse_whole_seconds(getattr(model, key))
        except ValueError as error:
            raise fail(key, str(error)) from None

    return ScheduleEntry(
        name=name,
        daemon=model.daemon,
        task=model.task if model.task is not None else SHELL_TASK_PREFIX + name,
        args=dict(model.args),
        rule=rule,
        zone=zone,
        misfire=MisfirePolicy(model.misfire),
        misfire_grace=durations["misfire_grace"],
        max_catch_up=model.max_catch_up,
        overlap=OverlapPolicy(model.overlap),
        jitter=durations["jitter"],
        enabled=model.enabled,
        max_attempts=model.max_attempts,
        shell=model.shell,
        source=source,
        line=line,
    )


def _schedule_paths(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Path]:
    given = [paths_or_dir] if isinstance(paths_or_dir, (str, Path)) else list(paths_or_dir)
    paths: list[Path] = []
    for item in map(Path, given):
        if item.is_dir():
            paths.extend(sorted(item.glob("*.toml")))
        elif item.is_file():
            paths.append(item)
        else:
            raise ConfigError(str(item), None, "no such schedule file or directory")
    return paths


def _zone(name: str, source: str, key: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, key, f"unknown time zone {name!r}; use an IANA name like 'Europe/Warsaw' or 'UTC'") from None


def _moment(value: datetime | str | None) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected an ISO date and time like '2026-11-21T03:00:00', got {value!r}") from None
    raise ValueError("expected a date and time")


def _first_problem(error: ValidationError) -> tuple[str | None, str]:
    problems = error.errors()
    first = problems[0]
    key = ".".join(str(part) for part in first["loc"]) or None
    if first["type"] == "extra_forbidden":
        reason = "unknown key"
        if len(first["loc"]) == 1:
            reason += f"; allowed keys: {', '.join(EntryModel.model_fields)}"
    elif first["type"] == "missing":
        reason = "this key is required"
    else:
        reason = first["msg"].removeprefix("Value error, ")
        given = first.get("input")
        if isinstance(given, (date, str, int, float)) and repr(given) not in reason:
            reason += f" (got {given!r})"
    if len(problems) > 1:
        reason += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''} in this entry)"
    return key, reason


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _header_line(text: str | None, table_path: str, name: str) -> int | None:
    """The 1-based line of ``[table_path.NAME]`` in ``text``; ``None`` if written another way."""
    if text is None:
        return None
    parts = [re.escape(part) + r"[ \t]*\.[ \t]*" for part in table_path.split(".")]
    quoted = "|".join(re.escape(form) for form in (name, f'"{name}"', f"'{name}'"))
    pattern = re.compile(r"^[ \t]*\[[ \t]*" + "".join(parts) + f"(?:{quoted})" + r"[ \t]*\]", re.MULTILINE)
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _key_line(text: str | None, header_line: int | None, key: str) -> int | None:
    """The line of ``key = …`` inside the table starting at ``header_line``."""
    if text is None or header_line is None:
        return None
    lines = text.splitlines()
    key_pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*[=.]")
    for number in range(header_line, len(lines)):
        if lines[number].lstrip().startswith("["):
            break
        if key_pattern.match(lines[number]):
            return number + 1
    return None
