"""`jobd schedules`, `pause`, `resume`, `import-crontab`: schedule commands."""

from __future__ import annotations

import os
import pwd
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from jobd.errors import BadInput, ConfigError

from .options import ConfigOption, JsonOption, load_settings
from .output import ago, console, print_json, reports_errors
from .ticks import tick_label

if TYPE_CHECKING:
    from jobd.config import JobdConfig


def register(app: typer.Typer) -> None:
    @app.command()
    @reports_errors
    def schedules(
        config: ConfigOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """List schedule entries: trigger, timezone, last fire and outcome, skips, next three ticks.

        Example: jobd schedules
        """
        from jobd.ops.status_reads import schedules_from_master

        rows = schedules_from_master(config)  # the running master's: nothing heavy loaded here
        if rows is None:
            from jobd.status.report import schedule_rows

            rows = schedule_rows(load_settings(config))
        if as_json:
            print_json(rows)
            return
        now = time.time()
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("entry", overflow="fold", min_width=14)
        table.add_column("daemon", no_wrap=True)
        table.add_column("trigger", no_wrap=True)
        table.add_column("last fire", no_wrap=True)
        table.add_column("skips", justify="right", no_wrap=True)
        table.add_column("next ticks", no_wrap=True)
        for row in rows:
            status = "\n(paused)" if row["paused"] else ("" if row["enabled"] else "\n(disabled)")
            upcoming = "\n".join(tick_label(tick, row.get("timezone"), now) for tick in row["next"]) or "-"
            last = f"{ago(row['last_fire'], now)}\n{row['last_outcome'] or '-'}" if row["fired"] else "-"
            table.add_row(
                row["name"] + status, row["daemon"], f"{row['trigger']}\n{row['timezone']}", last,
                str(row["skipped"]), upcoming,
            )
        console.print(table)

    @app.command()
    @reports_errors
    def pause(target: Annotated[str, typer.Argument(help="A daemon name or a schedule entry name.")], config: ConfigOption = None) -> None:
        """Stop a daemon's (or one entry's) schedule from firing; persisted across restarts.

        Example: jobd pause mailing      (ticks while paused are skipped, not replayed on resume)
        """
        _set_paused(config, target, paused=True)

    @app.command()
    @reports_errors
    def resume(target: Annotated[str, typer.Argument(help="A daemon name or a schedule entry name.")], config: ConfigOption = None) -> None:
        """Let a paused daemon's (or entry's) schedule fire again from its next tick.

        Example: jobd resume mailing
        """
        _set_paused(config, target, paused=False)

    @app.command("import-crontab")
    @reports_errors
    def import_crontab_command(
        crontab: Annotated[Path, typer.Argument(help="A crontab file (as `crontab -l` prints it).", exists=False)],
        daemon: Annotated[str, typer.Option("--daemon", "-d", help="Daemon whose workers run the commands.")] = "cron",
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the schedule file here (default: stdout).")] = None,
        system: Annotated[Optional[bool], typer.Option(
            "--system/--user",
            help="Lines have a user column (/etc/crontab, /etc/cron.d) or not (crontab -l). Default: from the path, else the lines' shape.",
        )] = None,
        retries: Annotated[int, typer.Option("--retries", min=0, max=999, help="Retries of a failed command (cron: none).")] = 0,
    ) -> None:
        """Turn a crontab into a schedule file of shell tasks; report lines it cannot convert.

        Example: crontab -l > my.cron && jobd import-crontab my.cron --daemon cron -o schedules/cron.toml
        Each entry runs once per tick, like cron (max_attempts = 1; --retries N for more). A system
        crontab's user column becomes each entry's shell.user (the master must then run as root).
        Exits 1 if some lines could not be converted (they are listed on stderr).
        """
        try:
            data = crontab.read_bytes()
        except OSError as error:
            raise BadInput(f"{crontab}: cannot read: {error.strerror}") from None
        from jobd.text_files import NotUtf8, decode_utf8

        try:
            text = decode_utf8(data)
        except NotUtf8 as error:  # an old crontab in Latin-1, say: its commands cannot be guessed
            raise BadInput(f"{crontab}:{error.line}: not UTF-8 text (byte 0x{error.byte:02x}); "
                           f"convert it first, e.g. iconv -f latin1 -t utf-8 {crontab} > crontab.utf8") from None
        from jobd.schedules import import_crontab

        result = import_crontab(text, daemon=daemon, source=str(crontab), system=system, retries=retries)
        if output is not None:
            output.write_text(result.toml, encoding="utf-8")
            count = len(result.entry_names)
            console.print(f"wrote {count} entr{'y' if count == 1 else 'ies'} to {output}")
        else:
            print(result.toml, end="")
        for note in result.notes:
            where = f"{crontab}:{note.line}" if note.line else str(crontab)
            typer.echo(f"{where}: note: {note.note}", err=True)
        if (refusal := user_switch_note(result.users, os.geteuid())) is not None:
            typer.echo(f"{crontab}: note: {refusal}", err=True)
        for line in result.unconverted:
            typer.echo(f"{crontab}:{line.line}: not converted: {line.reason}: {line.text}", err=True)
        if result.unconverted:
            raise typer.Exit(1)


def user_switch_note(users: tuple[str, ...], effective_uid: int) -> str | None:
    """A warning when imported entries run as users this (non-root) account cannot become."""
    if effective_uid == 0 or not users:
        return None
    try:
        me = pwd.getpwuid(effective_uid).pw_name
    except KeyError:
        me = str(effective_uid)
    others = [user for user in users if user != me]
    if not others:
        return None
    return (f"entries run as {', '.join(others)}: only a master running as root can switch users; "
            f"a master running as {me} refuses those jobs (they end dead with that reason)")


def _set_paused(config: Path | None, target: str, *, paused: bool) -> None:
    """Persist a pause (or its end) for a daemon or entry and say what changed."""
    settings = load_settings(config)
    key = _target(settings, target)
    from jobd.ops.jobs import set_schedule_paused

    if paused:
        outcome = "paused" if set_schedule_paused(settings, key, paused=True) else "was already paused"
    else:
        outcome = "resumed" if set_schedule_paused(settings, key, paused=False) else "was not paused"
    console.print(f"{target}: {outcome}")


def _target(settings: JobdConfig, name: str) -> str:
    if name in settings.daemons:
        return f"daemon:{name}"
    from jobd.config import load_schedule

    schedule = load_schedule(settings)
    if name in schedule:
        return f"entry:{name}"
    known = ", ".join(sorted(settings.daemons) + sorted(schedule)) or "none"
    raise ConfigError(str(settings.source), None, f"no daemon or schedule entry named {name!r} (known: {known})")
