"""`jobd top`: a full-screen live dashboard of daemons, running jobs and failures.

Like htop and the Sidekiq/Oban dashboards, it answers at a glance: is every
daemon alive and keeping up (workers busy/idle, queue, failures in the last
hour, next run), how far has each long job got (bar, percent, ETA, elapsed,
the task's own message), and what just failed (the error line). ``render``
is pure — a view (``jobd.activity.view``) and a terminal size in, a rich
renderable out — so it is tested without a terminal; ``run`` owns the
terminal: alternate screen, cbreak keys, restore on any exit.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from jobd import unserved
from jobd.dashboard import Dashboard

from .output import duration
from .ticks import tick_label
from .terminal import KeyReader
from .top_controls import KEYS_HELP, TopControls

REFRESH_SECONDS = 0.25  # four frames a second: progress looks live without loading memcached


def _clock(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(epoch).strftime("%H:%M:%S")


def _until(epoch: float | None, now: float, zone: str | None = None) -> str:
    """A schedule tick in its entry's zone (labelled), and how soon it comes."""
    if not epoch:
        return "-"
    label = tick_label(epoch, zone, now)
    return f"{label} (in {duration(epoch - now)})" if epoch >= now else label


def _next_run_zone(view: dict[str, Any], daemon: str, epoch: float | None) -> str | None:
    """The time zone of the schedule entry whose tick is a daemon's next run."""
    for entry in view.get("schedules") or []:
        if entry.get("daemon") == daemon and entry.get("next_run") == epoch:
            return entry.get("timezone")
    return None


def tick_label_or_dash(epoch: float | None, zone: str | None, now: float) -> str:
    return tick_label(epoch, zone, now) if epoch else "-"


def _number(value: Any) -> str:
    return "-" if value is None else str(value)


def header(view: dict[str, Any], width: int) -> Text:
    masters = view.get("masters") or []
    hosts = sorted({str(m.get("host")) for m in masters if m.get("host")})
    uptime = max((float(m.get("uptime") or 0) for m in masters), default=None)
    rate = view.get("jobs_per_minute")
    text = Text()
    text.append("jobd top", style="bold")
    text.append(f"  {len(masters)} master{'s' if len(masters) != 1 else ''}")
    if hosts:
        text.append(" on " + ", ".join(hosts[:4]) + (" …" if len(hosts) > 4 else ""))
    text.append(f"  up {duration(uptime)}" if uptime is not None else "  up -")
    text.append(f"  {rate:g} jobs/min" if isinstance(rate, (int, float)) else "  - jobs/min")
    text.append(f"  [{view.get('source')}]  {_clock(view.get('generated_at'))}", style="dim")
    text.truncate(width, overflow="ellipsis")
    return text


def daemons_table(view: dict[str, Any], width: int) -> Table:
    wide = width >= 100
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, expand=True, pad_edge=False, padding=(0, 1), title_justify="left")
    table.add_column("daemon", style="bold cyan", no_wrap=True, ratio=2)
    table.add_column("busy/workers", justify="right", no_wrap=True)
    table.add_column("queued", justify="right")
    table.add_column("running", justify="right")
    if wide:
        table.add_column("ok/h", justify="right")
    table.add_column("failed/h", justify="right")
    table.add_column("dead/h", justify="right")
    table.add_column("next run", no_wrap=True, ratio=2)
    now = float(view.get("generated_at") or time.time())
    for name, row in (view.get("daemons") or {}).items():
        busy = row.get("busy")
        workers = f"{busy}/{row.get('workers')}" if busy is not None else f"-/{row.get('workers')}"
        failed, dead = row.get("failed_last_hour"), row.get("dead_last_hour")
        zone = _next_run_zone(view, name, row.get("next_run"))
        cells = [name, workers, _number(row.get("queued")), _number(row.get("running"))]
        if wide:
            cells.append(_number(row.get("succeeded_last_hour")))
        cells += [
            Text(_number(failed), style="yellow" if failed else ""),
            Text(_number(dead), style="bold red" if dead else ""),
            _until(row.get("next_run"), now, zone) if wide else tick_label_or_dash(row.get("next_run"), zone, now),
        ]
        table.add_row(*cells)
    return table


def running_table(jobs: list[dict[str, Any]], width: int, limit: int) -> Table:
    wide = width >= 100
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, expand=True, pad_edge=False, padding=(0, 1))
    table.add_column("job", justify="right", no_wrap=True)
    table.add_column("task", no_wrap=True, max_width=30 if wide else 24, overflow="ellipsis")
    table.add_column("progress", no_wrap=True, width=max(10, width // 8))
    table.add_column("%", justify="right", no_wrap=True, width=4)
    table.add_column("eta", justify="right", no_wrap=True)
    table.add_column("elapsed", justify="right", no_wrap=True)
    if wide:
        table.add_column("host/pid", no_wrap=True, overflow="ellipsis", max_width=18)
    table.add_column("message", no_wrap=True, overflow="ellipsis", ratio=1)
    for job in jobs[:limit]:
        percent = job.get("percent")
        bar: RenderableType = ProgressBar(total=100.0, completed=float(percent)) if percent is not None else ProgressBar(total=None)
        cells: list[RenderableType] = [
            str(job.get("job_id")), str(job.get("task") or "?"), bar,
            f"{percent:.0f}%" if percent is not None else "-",
            duration(job.get("eta_seconds")) if job.get("eta_seconds") is not None else "-",
            duration(job.get("elapsed")),
        ]
        if wide:
            cells.append(f"{job.get('host') or '-'}/{job.get('worker_pid') or '-'}")
        cells.append(Text(str(job.get("message") or ""), style="dim"))
        table.add_row(*cells)
    if len(jobs) > limit:
        table.caption = f"… and {len(jobs) - limit} more running"
    return table


def failures_table(failures: list[dict[str, Any]], width: int, limit: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, expand=True, pad_edge=False, padding=(0, 1))
    table.add_column("at", no_wrap=True)
    table.add_column("job", justify="right", no_wrap=True)
    table.add_column("task", no_wrap=True, max_width=28 if width >= 100 else 18, overflow="ellipsis")
    table.add_column("", no_wrap=True)
    table.add_column("error", no_wrap=True, overflow="ellipsis", ratio=1)
    for event in failures[:limit]:
        kind = str(event.get("kind"))
        table.add_row(
            _clock(event.get("at")), str(event.get("job_id")), str(event.get("task") or "?"),
            Text(kind, style="bold red" if kind == "dead" else "yellow"), Text(str(event.get("error") or ""), style="red"),
        )
    return table


def schedules_table(entries: list[dict[str, Any]], now: float, limit: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, expand=True, pad_edge=False, padding=(0, 1))
    table.add_column("next", no_wrap=True)
    table.add_column("daemon", no_wrap=True)
    table.add_column("schedule", no_wrap=True, overflow="ellipsis", ratio=1)
    for entry in entries[:limit]:
        table.add_row(_until(entry.get("next_run"), now, entry.get("timezone")), str(entry.get("daemon")), str(entry.get("name")))
    return table


def batch_line(batch: dict[str, Any]) -> str:
    """An open batch in one line: 'batch 7 campaign-42: 320/500 finished (64%), 2 dead'."""
    line = f"batch {batch['id']} {batch['name']}: {batch['finished']}/{batch['total']} finished"
    if batch.get("percent") is not None:
        line += f" ({batch['percent']:g}%)"
    if batch.get("dead"):
        line += f", {batch['dead']} dead"
    return line + ("" if batch.get("sealed") else ", still taking members")


def _title(text: str) -> Text:
    return Text(text, style="bold reverse")


def render(
    view: dict[str, Any], width: int = 80, height: int = 24, *, interactive: bool = False, controls: TopControls | None = None
) -> RenderableType:
    """One frame of the dashboard, fitted to ``width`` × ``height``."""
    controls = controls or TopControls()
    if controls.help_shown:
        return keys_help(width)
    now = float(view.get("generated_at") or time.time())
    parts: list[RenderableType] = [header(view, width)]
    if view.get("note"):
        parts.append(Text(str(view["note"]), style="yellow"))
    parts += [Text(note, style="bold yellow") for note in unserved.notes(view)]  # jobs nobody runs
    parts += [Text(batch_line(batch), no_wrap=True, overflow="ellipsis") for batch in view.get("batches") or []]
    daemons = view.get("daemons") or {}
    parts += [_title(" Daemons "), daemons_table(view, width)]
    running = controls.sorted_running(view.get("running") or [])
    failures = view.get("failures") or []
    schedules = view.get("schedules") or []
    # Rows left once the fixed lines are drawn: titles, table headers (2 lines
    # each, or 1 for a "none" line), a possible "… more" caption, the footer.
    fixed = len(parts) + 1 + 2 + len(daemons) + 1 + 3 + 1 + (2 if failures else 1) + 1 + (2 if schedules else 1)
    spare = max(3, height - fixed - (1 if interactive else 0))
    failure_rows = min(len(failures), max(1, spare // 4))
    schedule_rows = min(len(schedules), max(1, spare // 5))
    running_rows = max(1, spare - failure_rows - schedule_rows)
    parts += [_title(f" Running ({len(running)}) "), running_table(running, width, running_rows) if running else Text("  nothing running", style="dim")]
    parts += [_title(" Recent failures "), failures_table(failures, width, failure_rows) if failures else Text("  none", style="dim")]
    parts.append(_title(" Upcoming "))
    parts.append(schedules_table(schedules, now, schedule_rows) if schedules else Text("  - (no schedule information)", style="dim"))
    if interactive:
        parts.append(Text(controls.footer(), style="dim"))
    return Group(*parts)


def keys_help(width: int) -> RenderableType:
    """The `?` screen: every key and what it does."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=(0, 2))
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("what it does")
    for key, meaning in KEYS_HELP:
        table.add_row(key, meaning)
    return Group(_title(" jobd top: keys "), table, Text("press ? to go back", style="dim"))


ONCE_PIPED_WIDTH = 160


def once(dashboard: Dashboard, console: Console, daemon: str | None) -> None:
    """Print one frame (for scripts and tests)."""
    view = dashboard.view(daemon)
    width = console.size.width if console.is_terminal else ONCE_PIPED_WIDTH  # piped: wide, not 512 columns of padding
    console.print(render(view, width, console.size.height))


def run(dashboard: Dashboard, console: Console, daemon: str | None, refresh: float = REFRESH_SECONDS) -> None:
    """The live dashboard until `q`, Ctrl-C or end of input; the terminal is restored in every case."""
    controls = TopControls(daemon=daemon)
    daemons: list[str] = []
    with KeyReader() as keys, Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
        try:
            while True:
                size = console.size
                view = dashboard.view(controls.daemon)
                if controls.daemon is None:
                    daemons = sorted(view.get("daemons") or {})
                live.update(render(view, size.width, size.height, interactive=True, controls=controls), refresh=True)
                key = keys.read(timeout=refresh)
                if key is not None:
                    controls = controls.on_key(key, daemons)
                    if controls.quit:
                        return
        except KeyboardInterrupt:
            return
