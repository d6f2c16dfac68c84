"""Import a crontab into a schedule file of shell entries.

Every convertible line becomes one ``[entries.NAME]`` running its command
line through ``/bin/sh -c`` — as cron does, or through the crontab's
``SHELL=`` — with the environment lines set above it, and one attempt
(``max_attempts = 1``: cron never retried a failed command; ``retries`` asks
for more). A system crontab (``/etc/crontab``, ``/etc/cron.d/*``) has a user
column: each entry keeps it as ``shell.user``. Lines that cannot mean the
same thing in jobd are reported, never silently dropped or approximated:

* ``@reboot`` — jobd has no "at boot" trigger; such commands belong in a
  systemd unit (or ``jobd trigger`` from one).
* an unescaped ``%`` in the command — cron turns it into a newline and feeds
  the rest to the command's stdin; move that input into a script.
* ``SHELL=`` that is not an absolute path; unparsable or invalid time fields.

Some lines are kept with a note, not refused: ``MAILTO=addr`` (jobd does not
mail; a failed job fires the alert hook instead, ``MAILTO=""`` is silent),
and a user crontab whose commands start with a user name (a system crontab
imported as a user one).

The time fields are kept as written, so the imported entry fires exactly
when cron would (same dialect: Sunday is 0 or 7, and day-of-month *or*
day-of-week when both are restricted). ``CRON_TZ=`` sets the following
entries' ``timezone``. Two choices differ from cron and are written into the
file's header: ``misfire = "skip"`` is spelled out (cron never runs a missed
tick; change it to ``run_once`` to stop losing ticks to restarts), and
overlap is jobd's default ``forbid`` (cron would start a second copy while
the first still runs).
"""

from __future__ import annotations

import json
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobd.schedules.cron import compile_cron

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_ENV_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)")
_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")
_INTERPRETERS = {"sh", "bash", "dash", "zsh", "env", "php", "python", "python3", "perl", "ruby", "node",
                 "nice", "ionice", "flock", "timeout", "cd", "sudo", "nohup", "exec"}
_SLUG_LENGTH = 40
_USER_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")
#: Files cron reads with a user column (crontab(5)).
_SYSTEM_CRONTABS = re.compile(r"(^|/)etc/(crontab|cron\.d/[^/]+)$")


@dataclass(frozen=True)
class UnconvertedLine:
    """A crontab line that was not imported, and why."""

    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class ImportNote:
    """A line imported (or an environment line accepted) whose meaning changed: the operator should read it."""

    line: int
    text: str
    note: str


@dataclass(frozen=True)
class ImportResult:
    """The generated schedule file, what could not be converted, and what changed meaning."""

    toml: str
    entry_names: tuple[str, ...]
    unconverted: tuple[UnconvertedLine, ...]
    notes: tuple[ImportNote, ...] = ()
    system: bool = False  # the lines were read with a user column
    users: tuple[str, ...] = ()  # the users entries run as (system crontabs)


@dataclass
class _State:
    env: dict[str, str]
    zone: str | None
    comments: list[str]
    system: bool = False
    max_attempts: int = 1
    interpreter: str | None = None
    is_user: Callable[[str], bool] = lambda name: False
    notes: list[ImportNote] = field(default_factory=list)
    users: dict[str, None] = field(default_factory=dict)


def local_user_exists(name: str) -> bool:
    """Whether ``name`` is an account on this host (what tells a user column from a command)."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def is_system_crontab_path(source: str) -> bool:
    """``/etc/crontab`` and ``/etc/cron.d/*``: the files cron reads with a user column."""
    return bool(_SYSTEM_CRONTABS.search(source))


def import_crontab(
    text: str,
    *,
    daemon: str,
    source: str,
    name_prefix: str | None = None,
    system: bool | None = None,
    retries: int = 0,
    is_user: Callable[[str], bool] = local_user_exists,
) -> ImportResult:
    """Convert crontab ``text`` (read from ``source``) into schedule-file TOML for ``daemon``.

    ``system`` says whether lines carry a user column (``/etc/crontab``,
    ``/etc/cron.d``) or not (``crontab -l``); ``None`` decides from the
    source's path, else from the lines' shape (every line's first word after
    the time fields is a user of this host, per ``is_user``), and notes it.
    Every entry gets ``max_attempts = retries + 1``. Entry names are
    ``{name_prefix}-{line}-{program}``; the prefix defaults to the source
    file's name.
    """
    if retries < 0:
        raise ValueError("retries cannot be negative")
    prefix = _slug(name_prefix if name_prefix is not None else PurePath(source).stem) or "crontab"
    state = _State(env={}, zone=None, comments=[], max_attempts=retries + 1, is_user=is_user)
    if system is None:
        system = is_system_crontab_path(source)
        if not system and _has_user_column(text, is_user):
            system = True
            state.notes.append(ImportNote(0, "", "every line has a user name after its time fields: read as a system "
                                                 "crontab (with a user column); pass --user if that is wrong"))
    state.system = system
    blocks: list[str] = []
    names: list[str] = []
    unconverted: list[UnconvertedLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            state.comments.clear()
            continue
        if line.startswith("#"):
            state.comments.append(line)
            continue
        outcome = _convert(line, number, state, daemon=daemon, prefix=prefix)
        if isinstance(outcome, UnconvertedLine):
            unconverted.append(outcome)
        elif isinstance(outcome, str):
            blocks.append(outcome)
        elif outcome is not None:
            name, block = outcome
            names.append(name)
            blocks.append(block)
        state.comments.clear()
    header = [
        f"# Imported from {source} by jobd's crontab import.",
        "# Each entry runs its command line with /bin/sh -c (or the crontab's SHELL), like cron,",
        f"# with max_attempts = {state.max_attempts}" + (" (cron never retried a failed command)." if state.max_attempts == 1
                                                          else f" ({state.max_attempts - 1} retries asked for)."),
        '# misfire = "skip" keeps cron\'s behaviour (a missed tick never runs);',
        '# "run_once" would run one job for the ticks missed while jobd was down.',
        '# Overlap is jobd\'s default "forbid": a tick is skipped while the previous run',
        '# is still going (cron would start a second copy; set overlap = "allow" for that).',
    ]
    toml = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + ("\n" if blocks else "")
    return ImportResult(toml=toml, entry_names=tuple(names), unconverted=tuple(unconverted),
                        notes=tuple(state.notes), system=state.system, users=tuple(state.users))


def _has_user_column(text: str, is_user: Callable[[str], bool]) -> bool:
    """True when every schedule line has a known user and a command after its time fields."""
    seen = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or (_ENV_LINE.fullmatch(line) and not line[0].isdigit() and line[0] not in "*@"):
            continue
        words = _after_time_fields(line).split(None, 1)
        if len(words) < 2 or not _USER_NAME.fullmatch(words[0]) or not is_user(words[0]):
            return False
        seen = True
    return seen


def _after_time_fields(line: str) -> str:
    if line.startswith("@"):
        return line.partition(" ")[2].strip()
    fields = line.split(None, 5)
    return fields[5] if len(fields) == 6 else ""


def _convert(
    line: str, number: int, state: _State, *, daemon: str, prefix: str
) -> tuple[str, str] | UnconvertedLine | str | None:
    """An entry (name, TOML block), a refusal, a comment block to keep, or nothing (an env line)."""
    def refuse(reason: str) -> UnconvertedLine:
        return UnconvertedLine(line=number, text=line, reason=reason)

    env_match = _ENV_LINE.fullmatch(line)
    if env_match and not line[0].isdigit() and line[0] not in "*@":
        name, value = env_match[1], _unquote(env_match[2].strip())
        if name == "MAILTO":
            if not value:
                return None  # "no mail": what jobd does anyway
            state.notes.append(ImportNote(number, line, _MAILTO_NOTE.format(address=value)))
            return f"# {line}  (line {number}: jobd does not mail; see alert_command in jobd.toml)"
        reason = _apply_env(name, value, state)
        return refuse(reason) if reason else None

    if line.startswith("@"):
        macro, _, rest = line.partition(" ")
        macro = macro.lower()
        if macro == "@reboot":
            return refuse("@reboot has no jobd equivalent: jobd has no 'at boot' trigger; "
                          "start the command from a systemd unit instead")
        if macro not in MACROS:
            return refuse(f"unknown macro {macro!r}; known: @reboot, {', '.join(MACROS)}")
        expression, remainder = MACROS[macro], rest.strip()
    else:
        fields = line.split(None, 5)
        if len(fields) < 6:
            return refuse("expected five time fields and a command")
        expression, remainder = " ".join(fields[:5]), fields[5]
    command = remainder.strip()
    user = None
    if state.system:
        words = command.split(None, 1)
        if len(words) < 2:
            return refuse("expected five time fields, a user and a command (a system crontab line)")
        user, command = words[0], words[1].strip()
        if not _USER_NAME.fullmatch(user):
            return refuse(f"{user!r} is not a user name (the column after the time fields of a system crontab)")
    elif (words := command.split(None, 1)) and len(words) == 2 and _USER_NAME.fullmatch(words[0]) \
            and state.is_user(words[0]):
        state.notes.append(ImportNote(number, line, f"the command starts with {words[0]!r}, a user of this host: if this "
                                                    "is a system crontab line, import the file with --system"))
    if not command:
        return refuse("the line has no command")
    if _UNESCAPED_PERCENT.search(command):
        return refuse("unescaped '%' in the command: cron turns it into a newline and sends the rest "
                      "to stdin, which jobd does not emulate; move that input into a script "
                      "(or escape it as \\% if you meant a literal percent sign)")
    try:
        compile_cron(expression)
    except ValueError as error:
        return refuse(str(error))
    command = command.replace("\\%", "%")
    name = f"{prefix}-{number}" + (f"-{slug}" if (slug := _program_slug(command)) else "")
    if user is not None:
        state.users.setdefault(user)
    return name, _entry_block(name, number, line, expression, command, daemon, state, user)


_MAILTO_NOTE = (
    "MAILTO={address}: jobd does not mail a command's output; it logs it, and a job that fails "
    "(max_attempts used up) fires the alert hook: set alert_command in jobd.toml, e.g. "
    "alert_command = \"mail -s 'jobd: job failed' {address}\" (the event arrives as JSON on stdin)"
)


def _apply_env(name: str, value: str, state: _State) -> str | None:
    """Record an environment line for the entries below it; a reason if it cannot be kept."""
    if name == "SHELL":
        if value in ("/bin/sh", "sh"):
            state.interpreter = None
            return None
        if not value.startswith("/"):
            return f"SHELL={value}: give the shell's absolute path (e.g. /bin/bash), as cron needs"
        state.interpreter = value
        return None
    if name == "CRON_TZ":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            return f"unknown time zone {value!r} in CRON_TZ"
        state.zone = value
        return None
    state.env[name] = value
    return None


def _entry_block(
    name: str, number: int, line: str, expression: str, command: str, daemon: str, state: _State, user: str | None
) -> str:
    rows = [*state.comments, f"# line {number}: {line}", f"[entries.{_key(name)}]",
            f"daemon = {_string(daemon)}", f"cron = {_string(expression)}"]
    if state.zone:
        rows.append(f"timezone = {_string(state.zone)}")
    rows.append('misfire = "skip"')
    rows.append(f"max_attempts = {state.max_attempts}")
    rows.append("shell.command = " + _string(command))
    if state.interpreter:
        rows.append("shell.interpreter = " + _string(state.interpreter))
    if user is not None:
        rows.append("shell.user = " + _string(user))
    if state.env:
        pairs = ", ".join(f"{_key(key)} = {_string(value)}" for key, value in state.env.items())
        rows.append(f"shell.env = {{ {pairs} }}")
    return "\n".join(rows)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _program_slug(command: str) -> str:
    for token in command.split():
        if "=" in token or token.startswith("-"):
            continue
        base = PurePath(token).name
        stem = base.split(".")[0] if not base.startswith(".") else base
        if stem in _INTERPRETERS or not stem:
            continue
        return _slug(stem)
    return ""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:_SLUG_LENGTH].strip("-")


def _string(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML; DEL must be escaped too)."""
    return json.dumps(value).replace("\x7f", "\\u007f")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)
