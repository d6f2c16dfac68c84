"""How daemon management prints: start/stop/restart/scale results and the status views."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape
from rich.table import Table

from .output import ago, console, counted, duration


def desired_text(daemon: dict[str, Any]) -> str:
    """'started/4' (running, 4 workers), 'stopped', or '-' when unknown."""
    desired = daemon.get("desired")
    if not desired:
        return "-"
    if desired["state"] != "started":
        return "stopped"
    return f"started/{desired.get('size', desired.get('workers') or '?')}"


def actual_text(daemon: dict[str, Any]) -> str:
    """'started/4', 'stopping/1', 'stopped', with a rolling restart's progress."""
    state = daemon.get("state") or "-"
    workers = daemon.get("workers")
    if workers and state != "-":
        state += f"/{sum(1 for w in workers if w['state'] in ('starting', 'idle', 'busy'))}"
    restart = daemon.get("restart")
    if restart:
        state += f" restarting {restart['replaced']}/{restart['total']}"
    return state


def rss_text(rss: int | None) -> str:
    return "-" if rss is None else f"{rss / 1024 / 1024:.1f} MiB"


def cpu_text(cpu: float | None) -> str:
    return "-" if cpu is None else f"{cpu:.1f}%"


def workers_table(daemons: dict[str, dict[str, Any]]) -> Table | None:
    """One row per worker of every daemon: pid, uptime, jobs done, current job, CPU% and RSS."""
    table = Table("daemon", "pid", "state", "uptime", "jobs done", "current job", "cpu", "rss")
    rows = 0
    for name, daemon in daemons.items():
        for worker in daemon.get("workers") or []:
            job = f"{worker['job_id']} {worker['task']}" if worker.get("job_id") else "-"
            table.add_row(
                name, str(worker["pid"]), worker["state"], duration(worker.get("uptime")), str(worker.get("jobs_done", 0)),
                job, cpu_text(worker.get("cpu_percent")), rss_text(worker.get("rss_bytes")),
            )
            rows += 1
    return table if rows else None


def print_changes(results: dict[str, dict[str, Any]], verb: str) -> None:
    """After `jobd start/stop DAEMON`: one line per daemon saying what changed."""
    for name, result in results.items():
        if result.get("was") == result.get("state"):
            console.print(f"{name}: already {result['state']}", highlight=False)
        elif result.get("state") == "started":
            console.print(f"{name}: {verb} ({counted(result['desired']['size'], 'worker')})", highlight=False)
        else:
            console.print(f"{name}: {verb}", highlight=False)


def print_daemon_detail(report: dict[str, Any]) -> None:
    """`jobd status DAEMON`: workers, running jobs with progress, queue, failures, schedule."""
    daemon, master = report["daemon"], report["master"]
    now = time.time()
    name = daemon["daemon"]
    console.print(f"[bold]{escape(name)}[/]: desired {desired_text(daemon)}, actual {actual_text(daemon)}"
                  + ("" if master.get("running") else " (master not running)"), highlight=False, markup=True)
    if daemon.get("error"):
        console.print(f"[red]last worker error:[/] {escape(str(daemon['error']))}", highlight=False, markup=True)
    table = workers_table({name: daemon})
    console.print(table if table else "workers: none")
    running = [w for w in daemon.get("workers") or [] if w.get("job_id")]
    if running:
        jobs = Table("job", "task", "pid", "running for", "progress")
        for worker in running:
            jobs.add_row(str(worker["job_id"]), worker["task"], str(worker["pid"]), duration(worker.get("running_for")),
                         progress_text(worker.get("progress")))
        console.print(jobs)
    else:
        console.print("running jobs: none")
    queue = daemon.get("queue") or {}
    console.print(f"queue: {queue.get('depth', 0)} queued, oldest {ago(queue.get('oldest_created_at'), now)}", highlight=False)
    failures = daemon.get("recent_failures") or []
    if failures:
        table = Table("job", "task", "state", "attempts", "when", "error")
        for failure in failures:
            table.add_row(str(failure["id"]), failure["task"], failure["state"], str(failure["attempts"]),
                          ago(failure.get("finished_at"), now), (failure.get("error") or "")[:70])
        console.print(table)
    else:
        console.print("recent failures: none")
    console.print(f"next schedule ticks: {schedule_text(daemon)}", highlight=False)


def progress_text(progress: dict[str, Any] | None) -> str:
    if not progress:
        return "-"
    done, total = progress.get("done"), progress.get("total")
    text = f"{done}/{total}" if total else str(done if done is not None else "")
    if total:
        text += f" ({100 * (done or 0) / total:.0f}%)"
    if progress.get("message"):
        text += f" {progress['message']}"
    return text.strip() or "-"


def schedule_text(daemon: dict[str, Any]) -> str:
    """The next ticks if the master reports them (schedules integration), else '-'."""
    ticks = daemon.get("next_ticks") or daemon.get("schedules")
    if not ticks:
        return "-"
    if isinstance(ticks, list):
        return "; ".join(str(tick) if not isinstance(tick, dict) else " ".join(f"{k}={v}" for k, v in tick.items()) for tick in ticks)
    return str(ticks)
