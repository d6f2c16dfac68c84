"""`jobd batches` and `jobd batch ID`: batches' progress, and cancelling one.

Like every command module, this one imports only typer and the shared
options when the CLI starts; each command imports the library it needs
when it runs.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from .options import ConfigOption, JsonOption, RowId, load_settings
from .output import ago, console, print_json, reports_errors, when

_STATES = "open, complete, cancelled"


def progress_text(batch: dict[str, Any]) -> str:
    """'320/500 (64%)': members finished of the total."""
    text = f"{batch['finished']}/{batch['total']}"
    if batch["percent"] is not None:
        text += f" ({batch['percent']:g}%)"
    return text


@reports_errors
def batches(
    config: ConfigOption = None,
    state: Annotated[Optional[list[str]], typer.Option("--state", "-s", help=f"Filter by state ({_STATES}; repeatable).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List recent batches, newest first: finished of total, succeeded, dead, cancelled, and state.

    Example: jobd batches --state open
    """
    from rich.table import Table

    from jobd.batch_record import BatchState
    from jobd.errors import InvalidArgs
    from jobd.ops.batch_reads import list_batches

    unknown = [value for value in state or [] if value not in {str(known) for known in BatchState}]
    if unknown:
        raise InvalidArgs(f"--state {unknown[0]!r} is not a batch state (batch states: {_STATES})")
    found = list_batches(config, states=[BatchState(value) for value in state or []], limit=limit)
    if as_json:
        print_json([batch.to_dict() for batch in found])
        return
    now = time.time()
    table = Table("id", "name", "state", "done", "succeeded", "dead", "cancelled", "total", "created")
    for batch in found:
        table.add_row(
            str(batch.id), batch.name, str(batch.state) + ("" if batch.sealed else " (filling)"), progress_text(batch.to_dict()),
            str(batch.succeeded), str(batch.dead), str(batch.cancelled), str(batch.total), ago(batch.created_at, now),
        )
    console.print(table)


@reports_errors
def batch_detail(
    batch_id: RowId,
    config: ConfigOption = None,
    cancel: Annotated[bool, typer.Option("--cancel", help="Cancel it: waiting members now, running ones asked to stop; no callback runs.")] = False,
    as_json: JsonOption = False,
) -> None:
    """One batch: counters, progress, members by state, callbacks and their jobs.

    Example: jobd batch 7
             jobd batch 7 --cancel
    """
    from jobd.ops.batch_reads import batch_report

    if cancel:
        from jobd.batches import cancel_batch

        cancel_batch(batch_id, config=load_settings(config, with_schedule=False))
    report = batch_report(config, batch_id)
    if as_json:
        print_json(report)
        return
    if cancel:
        console.print(f"batch {batch_id} cancelled ({report['cancelled']} members cancelled)")
    console.print(f"[bold]batch {report['id']}[/] {escape(str(report['name']))}: {report['state']}"
                  + ("" if report["sealed"] else " (still taking members)"), highlight=False, markup=True)
    console.print(f"progress: {progress_text(report)} finished, {report['pending']} pending", highlight=False)
    console.print(f"succeeded {report['succeeded']}, dead {report['dead']}, cancelled {report['cancelled']}", highlight=False)
    members = ", ".join(f"{state} {count}" for state, count in sorted(report["members"].items())) or "none"
    console.print(f"members now: {members}", highlight=False)
    for key, job_key in (("on_complete", "complete_job_id"), ("on_failure", "failure_job_id")):
        callback = report[key]
        if callback is not None:
            queued = f" → job {report[job_key]}" if report[job_key] else ""
            console.print(f"{key}: {callback['daemon']} {callback['task']} {callback['args']}{queued}", highlight=False)
    ended = f", ended {when(report['finished_at'])}" if report["finished_at"] else ""
    console.print(f"created {when(report['created_at'])}{ended}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(batches)
    app.command("batch")(batch_detail)
