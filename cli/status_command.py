"""`jobd status [DAEMON] [--json]`: the status document printed for people or programs.

``--json`` prints the document (``StatusReport.to_json()``, docs/status-json.md);
the tables below read the same document. With a master running, the
master composes it (``jobd.ops.status_reads``) and the command validates no
config models and loads no database code, for people and programs alike.
Library code is imported when the command runs (see ``cli.jobs_commands``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .options import ConfigOption, JsonOption, load_settings
from .output import console, duration, print_json, reports_errors, when

@reports_errors
def status(
    daemon: Annotated[Optional[str], typer.Argument(help="One daemon, shown in detail.", show_default=False)] = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show daemons (desired vs actual), workers and job counts; from the store when the master is down.

    Example: jobd status --json
             jobd status mailing    (workers, running jobs, queue, recent failures, next ticks)
    """
    if daemon is not None:
        _print_daemon(config, daemon, as_json)
        return
    from jobd.ops.status_reads import quick_status

    # Composed by the running master, or with none by this command through the driver: nothing heavy loaded here.
    document = quick_status(config, live_activity=as_json)
    if document is None:
        from jobd.status.report import read_status

        settings = load_settings(config, with_schedule=False)
        document = read_status(settings, live_activity=as_json).to_json()  # the running jobs of every host: for tools
    if as_json:
        print_json(document)  # the documented shape: docs/status-json.md
    else:
        print_status(document)


def _print_daemon(config: Path | None, daemon: str, as_json: bool) -> None:
    """The running master's detail on ``daemon`` (the config's digest names its socket), else the store's
    (through the driver alone where it can)."""
    from jobd.config_digest import config_digest
    from jobd.control import client
    from jobd.errors import MasterNotRunning

    from . import daemons as daemon_output

    try:
        detail = client.call(config_digest(config).socket, "daemon_status", {"daemon": daemon})
    except MasterNotRunning:
        from jobd.ops.status_reads import daemon_status_from_store

        detail = daemon_status_from_store(config, daemon)  # through the driver: nothing heavy loaded
        if detail is None:
            from jobd.daemons import client as daemon_client

            detail = daemon_client.status_from_store(load_settings(config, with_schedule=False), daemon)
    if as_json:
        print_json(detail)
    else:
        daemon_output.print_daemon_detail(detail)


def print_status(document: dict[str, Any]) -> None:
    """The status for people, from the ``status --json`` document: master, other hosts' masters, a row per daemon, workers.

    One renderer over the documented shape, whether the running master composed the document or this command did.
    """
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from . import daemons as daemon_output

    master = document["master"]
    if master.get("running"):
        console.print(
            f"master [green]running[/] pid {master['pid']} on {escape(str(master['host']))}, up {duration(master.get('uptime'))}",
            markup=True,
        )
    else:
        console.print("master [red]not running[/] (counts below come from the store)", markup=True)
    store_health = document.get("store") or {}
    if store_health.get("available") is False:
        console.print(
            f"store [red]unavailable[/] since {when(store_health.get('since'))} ({escape(str(store_health.get('error')))}); "
            "counts below are the last read, workers keep running",
            highlight=False, markup=True,
        )
    registered = [record for record in document.get("masters") or [] if "heartbeat_age" in record]  # the store's registry
    if len(registered) > 1 or any(not record["alive"] for record in registered):
        hosts = Table("master", "host", "pid", "state", "daemons", "heartbeat")
        for record in registered:
            state = record["state"] if record["alive"] or record["state"] in ("stopped", "dead") else "silent"
            hosts.add_row(
                record["id"], record["host"], str(record["pid"]), state, ", ".join(record["daemons"]),
                f"{record['heartbeat_age']:.0f}s ago",
            )
        console.print(hosts)
    # busy/idle per worker are in the workers table below; this one fits 80 columns
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("daemon", "desired", "actual", "queued", "running", "retry", "done", "dead", "cancel"):
        table.add_column(header, no_wrap=True, min_width=len(header))
    rows: dict[str, dict[str, Any]] = document["daemons"]
    for name, row in rows.items():
        counts = row["counts"]
        table.add_row(
            name, daemon_output.desired_text(row), daemon_output.actual_text(row),
            str(counts.get("queued", 0) + counts.get("scheduled", 0)), str(counts.get("running", 0)),
            str(counts.get("retrying", 0)), str(counts.get("succeeded", 0)), str(counts.get("dead", 0)),
            str(counts.get("cancelled", 0)),
        )
    console.print(table)
    from jobd import rate_status

    unseen = [entry["note"] for key in ("unserved", "unknown_states") for entry in document.get(key) or []]
    for note in unseen + rate_status.notes(document):  # jobs nobody runs, unknown states, rate waits
        console.print(f"[yellow]{escape(note)}[/]", highlight=False, markup=True)
    workers = daemon_output.workers_table(rows)
    if workers is not None:
        console.print(workers)
