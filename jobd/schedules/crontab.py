"""Import a crontab into a schedule file of shell entries.

Every convertible line becomes one ``[entries.NAME]`` running its command
line through ``/bin/sh -c`` — as cron does — with the environment lines set
above it. Lines that cannot mean the same thing in jobd are reported, never
silently dropped or approximated:

* ``@reboot`` — jobd has no "at boot" trigger; such commands belong in a
  systemd unit (or ``jobd trigger`` from one).
* an unescaped ``%`` in the command — cron turns it into a newline and feeds
  the rest to the command's stdin; move that input into a script.
* ``MAILTO=`` — jobd does not mail output; it logs it and keeps failed jobs
  with their error. Kept as a comment in the generated file.
* ``SHELL=`` other than ``/bin/sh``; unparsable or invalid time fields.

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
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class UnconvertedLine:
    """A crontab line that was not imported, and why."""

    line: int
    text: str
    reason: str


@dataclass(frozen=True)
class ImportResult:
    """The generated schedule file and what could not be converted."""

    toml: str
    entry_names: tuple[str, ...]
    unconverted: tuple[UnconvertedLine, ...]


@dataclass
class _State:
    env: dict[str, str]
    zone: str | None
    comments: list[str]


def import_crontab(
    text: str,
    *,
    daemon: str,
    source: str,
    name_prefix: str | None = None,
) -> ImportResult:
    """Convert crontab ``text`` (read from ``source``) into schedule-file TOML for ``daemon``.

    The text is a user crontab (``crontab -l``): ``/etc/crontab`` and
    ``/etc/cron.d`` files carry a user field, and jobd runs every command as
    its own user, so import each user's crontab separately. Entry names are
    ``{name_prefix}-{line}-{program}``; the prefix defaults to the source
    file's name.
    """
    prefix = _slug(name_prefix if name_prefix is not None else PurePath(source).stem) or "crontab"
    state = _State(env={}, zone=None, comments=[])
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
            if outcome.reason.startswith("MAILTO"):
                blocks.append(f"# {line}  (line {number}: not supported, see the import report)")
        elif outcome is not None:
            name, block = outcome
            names.append(name)
            blocks.append(block)
        state.comments.clear()
    header = [
        f"# Imported from {source} by jobd's crontab import.",
        "# Each entry runs its command line with /bin/sh -c, like cron.",
        '# misfire = "skip" keeps cron\'s behaviour (a missed tick never runs);',
        '# "run_once" would run one job for the ticks missed while jobd was down.',
        '# Overlap is jobd\'s default "forbid": a tick is skipped while the previous run',
        '# is still going (cron would start a second copy; set overlap = "allow" for that).',
    ]
    toml = "\n".join(header) + "\n\n" + "\n\n".join(blocks) + ("\n" if blocks else "")
    return ImportResult(toml=toml, entry_names=tuple(names), unconverted=tuple(unconverted))


def _convert(
    line: str, number: int, state: _State, *, daemon: str, prefix: str
) -> tuple[str, str] | UnconvertedLine | None:
    def refuse(reason: str) -> UnconvertedLine:
        return UnconvertedLine(line=number, text=line, reason=reason)

    env_match = _ENV_LINE.fullmatch(line)
    if env_match and not line[0].isdigit() and line[0] not in "*@":
        reason = _apply_env(env_match[1], _unquote(env_match[2].strip()), state)
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
    return name, _entry_block(name, number, line, expression, command, daemon, state)


def _apply_env(name: str, value: str, state: _State) -> str | None:
    """Record an environment line for the entries below it; a reason if it cannot be kept."""
    if name == "MAILTO":
        return ("MAILTO is not supported: jobd logs each command's output and keeps a failed "
                "job with its error and last output lines (kept as a comment)")
    if name == "SHELL":
        if value in ("/bin/sh", "sh"):
            return None
        return (f"SHELL={value} is not supported: jobd runs command lines with /bin/sh; "
                f"call {value} explicitly in the commands that need it")
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
    name: str, number: int, line: str, expression: str, command: str, daemon: str, state: _State
) -> str:
    rows = [*state.comments, f"# line {number}: {line}", f"[entries.{_key(name)}]",
            f"daemon = {_string(daemon)}", f"cron = {_string(expression)}"]
    if state.zone:
        rows.append(f"timezone = {_string(state.zone)}")
    rows.append('misfire = "skip"')
    rows.append("shell.command = " + _string(command))
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
