"""`jobd jobs`, `jobd job ID`, `jobd cancel ID`, `jobd retry ID`: thin over ``jobd.ops.jobs``.

Like every command module, this one imports only typer and the shared
options when the CLI starts; each command imports the library code (config
models, the store, rich tables) it needs when it runs, so ``jobd --help``
and the commands that need little answer quickly.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.markup import escape

from jobd.defaults import JOBS_LIST_MAX

from .options import ConfigOption, JsonOption, RowId, load_settings
from .output import ago, console, error_console, print_json, reports_errors, when

if TYPE_CHECKING:
    from jobd.job import Job


@reports_errors
def jobs(
    config: ConfigOption = None,
    state: Annotated[Optional[list[str]], typer.Option("--state", "-s", help="Filter by state (repeatable; any stored value).")] = None,
    daemon: Annotated[Optional[str], typer.Option("--daemon", "-d")] = None,
    task: Annotated[Optional[str], typer.Option("--task", "-t")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=JOBS_LIST_MAX)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List recent jobs, newest first.

    Example: jobd jobs --state dead --daemon mailing
    """
    from jobd.ops.job_reads import list_jobs
    from jobd.states import STATE_NAMES

    listing = list_jobs(config, states=state or [], daemon=daemon, task=task, limit=limit)
    if listing.unknown_states and not listing.jobs:  # a typo, most likely: say so (stderr, so --json stays parseable)
        error_console.print(f"no job in {', '.join(map(repr, listing.unknown_states))}: not a jobd state "
                            f"(jobd states: {', '.join(sorted(STATE_NAMES))})", highlight=False)
    if as_json:
        print_json([job.to_dict() for job in listing.jobs])
        return
    from rich.table import Table

    now = time.time()
    table = Table("id", "daemon", "task", "state", "attempts", "created", "error")
    for job in listing.jobs:
        table.add_row(str(job.id), job.daemon, job.task, str(job.state), str(job.attempts), ago(job.created_at, now), (job.error or "")[:60])
    console.print(table)


@reports_errors
def job_detail(job_id: RowId, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Everything about one job: args, state, attempts, progress, checkpoint, error and traceback.

    Example: jobd job 42
    """
    from jobd.ops.job_reads import show_job

    job = show_job(config, job_id)
    if as_json:
        print_json(job.to_dict())
        return
    data = job_fields_for_people(job)
    traceback = data.pop("traceback", None)
    traceback_label = data.pop("traceback_label", "traceback")
    for key in ("created_at", "started_at", "finished_at", "updated_at", "run_at"):
        data[key] = when(data[key])
    for key, value in data.items():
        if value is not None and value != "-":
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            console.print(f"[bold]{key}[/]: {escape(shown)}", highlight=False, markup=True)
    if traceback:
        console.print(f"[bold]{traceback_label}[/]:", markup=True)
        console.print(traceback, highlight=False)


def job_fields_for_people(job: Job) -> dict[str, Any]:
    """A job's fields as `jobd job ID` shows them: nothing stale, every error labelled with its attempt.

    Progress is what a running attempt last reported, so once a job has
    ended it is left out (a succeeded job stuck at "80%" misleads). An error
    kept on a job that later succeeded belongs to an earlier attempt: it is
    labelled so, not shown as if it were the outcome.
    """
    from jobd.states import FINAL, JobState

    data = job.to_dict()
    if job.state in FINAL:
        data.pop("progress", None)
    if job.error is None and job.traceback is None:
        return data
    error, traceback = data.pop("error"), data.pop("traceback")
    if job.state is JobState.SUCCEEDED:
        label = f"an earlier attempt's error (attempt {job.attempts} succeeded)"
    elif job.state in (JobState.DEAD, JobState.RETRYING, JobState.CANCELLED):
        label = f"error of attempt {job.attempts}"
    else:
        label = "last error (of an earlier run)"
    data[label] = error
    data["traceback"] = traceback
    data["traceback_label"] = label.replace("error", "traceback", 1)
    return data


@reports_errors
def cancel(job_id: RowId, config: ConfigOption = None) -> None:
    """Cancel a job: a waiting one at once; a running one is asked to stop (ctx.cancelled).

    Example: jobd cancel 42
    """
    from jobd.ops.jobs import cancel_job
    from jobd.states import JobState, phrase

    job = cancel_job(load_settings(config, with_schedule=False), job_id)
    if job.state is JobState.CANCELLED:
        console.print(f"job {job_id} cancelled")
    else:
        console.print(f"job {job_id} {phrase(job.state)}; its master was asked to cancel it")


@reports_errors
def retry(job_id: RowId, config: ConfigOption = None) -> None:
    """Queue a dead or cancelled job again with a fresh set of attempts.

    Example: jobd retry 42
    """
    from jobd.ops.jobs import retry_job
    from jobd.states import phrase

    job = retry_job(load_settings(config, with_schedule=False), job_id)
    console.print(f"job {job_id} {phrase(job.state)} again")
