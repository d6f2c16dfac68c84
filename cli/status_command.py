"""`jobd status [DAEMON] [--json]`: the typed ``StatusReport`` printed for people or programs.

``--json`` prints ``StatusReport.to_json()`` (docs/status-json.md); the
tables below read the same report. Library code is imported when the
command runs (see ``cli.jobs_commands``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from .options import ConfigOption, JsonOption, load_settings
from .output import console, duration, print_json, reports_errors, when

if TYPE_CHECKING:
    from jobd.config import JobdConfig
    from jobd.status.model import StatusReport


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
    if daemon is None and as_json:
        from jobd.ops.status_reads import status_from_master

        document = status_from_master(config)  # composed by the running master: nothing heavy loaded here
        if document is not None:
            print_json(document)
            return
    settings = load_settings(config, with_schedule=False)
    if daemon is not None:
        _print_daemon(settings, daemon, as_json)
        return
    from jobd.status.report import read_status

    report = read_status(settings, live_activity=as_json)  # the running jobs of every host: for tools
    if as_json:
        print_json(report.to_json())  # the documented shape: docs/status-json.md
        return
    print_report(report)


def _print_daemon(settings: JobdConfig, daemon: str, as_json: bool) -> None:
    from jobd.control import client
    from jobd.daemons import client as daemon_client
    from jobd.errors import MasterNotRunning

    from . import daemons as daemon_output

    try:
        detail = client.call(settings.socket, "daemon_status", {"daemon": daemon})
    except MasterNotRunning:
        detail = daemon_client.status_from_store(settings, daemon)
    if as_json:
        print_json(detail)
    else:
        daemon_output.print_daemon_detail(detail)


def print_report(report: StatusReport) -> None:
    """The status for people: master, other hosts' masters, one row per daemon, then the workers."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from jobd.status.model import RegisteredMaster

    from . import daemons as daemon_output

    master = report.master
    if master is not None:
        console.print(f"master [green]running[/] pid {master.pid} on {master.host}, up {duration(master.uptime)}")
    else:
        console.print("master [red]not running[/] (counts below come from the store)")
    store_health = report.store or {}
    if store_health.get("available") is False:
        console.print(
            f"store [red]unavailable[/] since {when(store_health.get('since'))} ({store_health.get('error')}); "
            "counts below are the last read, workers keep running",
            highlight=False,
        )
    registered = [record for record in report.masters if isinstance(record, RegisteredMaster)]
    if len(registered) > 1 or any(not record.alive for record in registered):
        hosts = Table("master", "host", "pid", "state", "daemons", "heartbeat")
        for record in registered:
            state = record.state if record.alive or record.state in ("stopped", "dead") else "silent"
            hosts.add_row(record.id, record.host, str(record.pid), state, ", ".join(record.daemons), f"{record.heartbeat_age:.0f}s ago")
        console.print(hosts)
    # busy/idle per worker are in the workers table below; this one fits 80 columns
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("daemon", "desired", "actual", "queued", "running", "retry", "done", "dead", "cancel"):
        table.add_column(header, no_wrap=True, min_width=len(header))
    rows = {name: daemon.to_json() for name, daemon in report.daemons.items()}
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

    for note in report.notes() + rate_status.notes({"daemons": rows}):  # jobs nobody runs, unknown states, rate waits
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    workers = daemon_output.workers_table(rows)
    if workers is not None:
        console.print(workers)
