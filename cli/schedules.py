"""`jobd schedules`, `pause`, `resume`, `import-crontab`: schedule commands."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from jobd.config import JobdConfig, load_config, load_schedule
from jobd.errors import BadInput, ConfigError, MasterNotRunning
from jobd.control import client
from jobd.schedules import import_crontab
from jobd.store import open_store
from jobd.ticker import Ticker

from .options import ConfigOption, JsonOption
from .output import ago, console, print_json, reports_errors


def schedule_rows(settings: JobdConfig) -> list[dict[str, Any]]:
    """Every entry with trigger, last fire, last outcome and next ticks (master or store)."""
    try:
        rows: list[dict[str, Any]] = client.call(settings.socket, "schedules")
    except MasterNotRunning:
        store = open_store(settings.store)
        store.initialise()
        rows = Ticker(store, load_schedule(settings)).describe()
    store = open_store(settings.store)
    for row in rows:
        job_id = row.get("last_job_id")
        row["last_outcome"] = str(store.jobs.get(job_id).state) if job_id else None
    return rows


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
        settings = load_config(config)
        rows = schedule_rows(settings)
        if as_json:
            print_json(rows)
            return
        now = time.time()
        table = Table("entry", "daemon", "task", "trigger", "tz", "last fire", "outcome", "skipped", "next ticks")
        for row in rows:
            status = " (paused)" if row["paused"] else ("" if row["enabled"] else " (disabled)")
            upcoming = ", ".join(dt.datetime.fromtimestamp(tick).strftime("%m-%d %H:%M:%S") for tick in row["next"]) or "-"
            table.add_row(
                row["name"] + status, row["daemon"], row["task"], row["trigger"], row["timezone"],
                ago(row["last_fire"], now) if row["fired"] else "-", row["last_outcome"] or "-",
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
    ) -> None:
        """Turn a crontab into a schedule file of shell tasks; report lines it cannot convert.

        Example: crontab -l > my.cron && jobd import-crontab my.cron --daemon cron -o schedules/cron.toml
        Exits 1 if some lines could not be converted (they are listed on stderr).
        """
        try:
            text = crontab.read_text(encoding="utf-8")
        except OSError as error:
            raise BadInput(f"{crontab}: cannot read: {error.strerror}") from None
        result = import_crontab(text, daemon=daemon, source=str(crontab))
        if output is not None:
            output.write_text(result.toml, encoding="utf-8")
            console.print(f"wrote {len(result.entry_names)} entries to {output}")
        else:
            print(result.toml, end="")
        for line in result.unconverted:
            typer.echo(f"{crontab}:{line.line}: not converted: {line.reason}: {line.text}", err=True)
        if result.unconverted:
            raise typer.Exit(1)


def _set_paused(config: Path | None, target: str, *, paused: bool) -> None:
    """Persist a pause (or its end) for a daemon or entry and say what changed."""
    settings = load_config(config)
    key = _target(settings, target)
    store = open_store(settings.store)
    store.initialise()
    if paused:
        outcome = "paused" if store.schedules.pause(key) else "was already paused"
    else:
        outcome = "resumed" if store.schedules.resume(key) else "was not paused"
    console.print(f"{target}: {outcome}")


def _target(settings: JobdConfig, name: str) -> str:
    if name in settings.daemons:
        return f"daemon:{name}"
    schedule = load_schedule(settings)
    if name in schedule:
        return f"entry:{name}"
    known = ", ".join(sorted(settings.daemons) + sorted(schedule)) or "none"
    raise ConfigError(str(settings.source), None, f"no daemon or schedule entry named {name!r} (known: {known})")
