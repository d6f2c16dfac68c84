"""`jobd logs [JOB_ID] [--follow]`: a job's own log lines, from the store."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from jobd.defaults import MAX_ROW_ID

from .output import reports_errors

if TYPE_CHECKING:
    from jobd.ops.log_reads import JobLogLine, JobLogs

FOLLOW_POLL_SECONDS = 0.5
FINAL_LINES_WAIT_SECONDS = 1.5  # > the master's log flush interval (0.5 s) plus the log queue's delay


@reports_errors
def logs(
    job_id: Annotated[Optional[int], typer.Argument(min=1, max=MAX_ROW_ID, help="Job id; without it, the latest lines of all jobs.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines (until the job ends).")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=1, help="Without JOB_ID: how many recent lines.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Path to jobd.toml.")] = None,
) -> None:
    """Show a job's own log lines (every attempt, tracebacks included), kept in the store.

    Example: jobd logs 42            (why did job 42 fail?)
             jobd logs 42 --follow   (watch it run)
    """
    from jobd.ops.log_reads import job_logs

    with job_logs(config) as store:  # through the database driver, on one connection while it follows
        _show(store, job_id, follow=follow, lines=lines, as_json=as_json)


def _show(store: JobLogs, job_id: int | None, *, follow: bool, lines: int, as_json: bool) -> None:
    from jobd.states import FINAL

    last = _print(store.read(job_id, recent=lines), as_json, show_job=job_id is None)
    while follow:
        if job_id is not None and store.job(job_id).state in FINAL:
            # The master writes log lines in batches, so the job's last lines can
            # land just after its final state: read until they stop coming.
            quiet_since = time.monotonic()
            deadline = quiet_since + FINAL_LINES_WAIT_SECONDS * 4
            while time.monotonic() - quiet_since < FINAL_LINES_WAIT_SECONDS and time.monotonic() < deadline:
                newest = _print(store.read(job_id, after_id=last), as_json, show_job=False)
                if newest > last:
                    last, quiet_since = newest, time.monotonic()
                time.sleep(FOLLOW_POLL_SECONDS / 2)
            return
        time.sleep(FOLLOW_POLL_SECONDS)
        last = max(last, _print(store.read(job_id, after_id=last), as_json, show_job=job_id is None))


def _print(found: list[JobLogLine], as_json: bool, *, show_job: bool) -> int:
    """Print lines; return the id of the last one (0 if none)."""
    last = 0
    for line in found:
        last = max(last, line.id or 0)
        if as_json:
            print(json.dumps(line.to_dict()), flush=True)
            continue
        stamp = dt.datetime.fromtimestamp(line.created_at).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        where = f"job={line.job_id} " if show_job else ""
        print(f"{stamp} {line.level} [pid {line.worker_pid}] {where}attempt={line.attempt} {line.logger}: {line.message}", flush=True)
    return last
