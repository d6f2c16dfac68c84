"""``jobd migrate``: run, preview and inspect per-tenant migrations (thin: render only).

Mounted by the main CLI with ``app.add_typer(migrate_app, name="migrate")``.
The migration engine (SQLAlchemy, sqlglot) and rich's progress views are
imported when a migrate command runs, not when ``jobd`` starts.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from jobd.errors import ExitCode, JobdError, exit_code_for
from jobd.migrations.outcome import OutcomeStatus, TenantOutcome
from jobd.migrations.snapshot_mode import SnapshotMode
from jobd.states import FINAL, JobState

from .options import load_settings
from .output import make_console

if TYPE_CHECKING:
    from jobd.migrations.settings import MigrationsSettings
    from rich.progress import TaskID

    from jobd.job import Job
    from jobd.migrations.fleet import FleetSummary
    from jobd.migrations.jobs import JobMode
    from jobd.migrations.status import FleetStatus
    from jobd.migrations.tenants import Tenant

migrate_app = typer.Typer(
    help="Migrate every tenant database: in parallel, behind snapshots, resumable.",
    no_args_is_help=False,
    add_completion=False,
)
console = make_console()
errors = make_console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="jobd.toml (default: $JOBD_CONFIG, else ./jobd.toml)", show_default=False),
]
TenantsOption = Annotated[str | None, typer.Option("--tenants", help="Comma-separated tenant names (default: all)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for programs instead of tables")]
LockWaitOption = Annotated[float, typer.Option("--lock-wait", min=0, help="Seconds to wait for another runner's tenant lock (0: refuse at once)")]

_STYLE = {
    OutcomeStatus.MIGRATED: "green", OutcomeStatus.UP_TO_DATE: "dim", OutcomeStatus.PLANNED: "cyan",
    OutcomeStatus.FAILED: "bold red", OutcomeStatus.BLOCKED: "bold yellow", OutcomeStatus.BUSY: "yellow",
    OutcomeStatus.REFUSED: "bold red", OutcomeStatus.SKIPPED: "yellow",
}

T = TypeVar("T")


def _config_path(option: Path | None, ctx: typer.Context) -> Path:
    if option is not None:
        return option
    parent = ctx.obj.get("config") if isinstance(ctx.obj, dict) else None
    if parent is not None:
        return Path(parent)
    return Path(os.environ.get("JOBD_CONFIG", "jobd.toml"))


def _settings(option: Path | None, ctx: typer.Context) -> MigrationsSettings:
    """The [migrations] settings, after the whole file was validated as every command does (README)."""
    path = _config_path(option, ctx)
    load_settings(path)  # a bad key anywhere is refused here (exit 2), before any tenant is contacted
    from jobd.migrations.settings import load_migrations_settings

    return load_migrations_settings(path)


def _names(tenants: str | None) -> list[str] | None:
    return [name.strip() for name in tenants.split(",") if name.strip()] if tenants else None


def _guard(action: Callable[[], T]) -> T:
    """Run a command body; a JobdError becomes its message and exit code, nothing else."""
    try:
        return action()
    except JobdError as error:
        errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, markup=True)
        raise typer.Exit(int(exit_code_for(error))) from None


def _refuse(message: str) -> None:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(int(ExitCode.BAD_INPUT))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@migrate_app.callback(invoke_without_command=True)
def migrate(
    ctx: typer.Context,
    config: ConfigOption = None,
    parallel: Annotated[int | None, typer.Option("--parallel", "-p", min=1, max=64, help="Tenants migrated at once (default: migrations.parallel)")] = None,
    tenants: TenantsOption = None,
    canary: Annotated[int, typer.Option("--canary", min=0, help="Migrate the K smallest tenants first; stop if any fails")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print each tenant's plan and SQL; change nothing")] = False,
    snapshot: Annotated[SnapshotMode | None, typer.Option("--snapshot", help="touched | schema | none (default: migrations.snapshot)")] = None,
    lock_wait: LockWaitOption = 0.0,
    as_json: JsonOption = False,
    foreground: Annotated[bool, typer.Option("--foreground", help="Migrate in this process even when a master is running")] = False,
) -> None:
    """Bring every tenant to the last step of the migrations folder.

    With a master running and a `migrate` daemon configured, each tenant
    becomes a job of that daemon (see `jobd top`); otherwise, or with
    --foreground, the tenants are migrated in this process.
    """
    ctx.obj = {"config": config}
    if ctx.invoked_subcommand is not None:
        return
    from jobd.migrations.jobs import job_mode
    from jobd.migrations.status import fleet_status

    settings = _guard(lambda: _settings(config, ctx))
    mode = snapshot or settings.snapshot
    if dry_run:
        preview = _guard(lambda: fleet_status(settings, tenant_names=_names(tenants), snapshot_mode=mode))
        _print_json(preview.to_json()) if as_json else _render_preview(preview)
        return
    jobs = None if foreground else _guard(lambda: job_mode(load_settings(_config_path(config, ctx)), note=_note))
    if jobs is not None:
        if parallel is not None:
            _note(f"--parallel is ignored: the {jobs.daemon!r} daemon's workers set how many tenants run at once")
        summary = _guard(lambda: _run_jobs_with_display(jobs, _names(tenants), canary, mode, lock_wait, as_json))
    else:
        summary = _guard(lambda: _run_with_display(settings, _names(tenants), parallel, canary, mode, lock_wait, as_json))
    if as_json:
        _print_json(summary.to_json())
    else:
        _render_summary(summary)
    if not summary.ok:
        raise typer.Exit(int(ExitCode.FAILURE))


def _run_with_display(
    settings: MigrationsSettings, names: list[str] | None, parallel: int | None, canary: int,
    mode: SnapshotMode, lock_wait: float, as_json: bool,
) -> FleetSummary:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobd.migrations.fleet import run_migrations

    live = console.is_terminal and not as_json
    if not live:
        def line(outcome: TenantOutcome) -> None:
            if not as_json:
                console.print(f"{outcome.tenant}: {outcome.status.value} ({len(outcome.applied)} step(s), {outcome.seconds:.1f}s)", highlight=False)
        return run_migrations(settings, tenant_names=names, parallel=parallel, canary=canary,
                              snapshot_mode=mode, lock_wait=lock_wait, on_outcome=line)
    rows: dict[str, TaskID] = {}
    with Progress(
        TextColumn("[bold]{task.fields[tenant]:<20}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True,
    ) as progress:
        overall = progress.add_task("tenants done", total=None, tenant="all")

        def on_progress(tenant: Tenant, done: int, total: int, message: str) -> None:
            if tenant.name not in rows:
                rows[tenant.name] = progress.add_task(message, total=total or 1, tenant=tenant.name)
            progress.update(rows[tenant.name], completed=done, total=total or 1, description=message)

        def on_outcome(outcome: TenantOutcome) -> None:
            progress.advance(overall)
            if outcome.tenant in rows:
                progress.remove_task(rows.pop(outcome.tenant))
            style = _STYLE[outcome.status]
            progress.console.print(
                f"[{style}]{outcome.status.value:<10}[/] {escape(outcome.tenant)}  {outcome.seconds:.1f}s", highlight=False, markup=True,
            )

        return run_migrations(settings, tenant_names=names, parallel=parallel, canary=canary, snapshot_mode=mode,
                              lock_wait=lock_wait, on_progress=on_progress, on_outcome=on_outcome)


def _note(message: str) -> None:
    errors.print(f"[dim]note: {escape(message)}[/]", highlight=False, markup=True)


def _run_jobs_with_display(
    jobs: JobMode, names: list[str] | None, canary: int, mode: SnapshotMode, lock_wait: float, as_json: bool,
) -> FleetSummary:
    """Submit the tenants as jobs and show each one's progress as the master records it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from jobd.migrations.jobs import run_as_jobs

    live = console.is_terminal and not as_json
    finished: set[str] = set()
    rows: dict[str, TaskID] = {}

    def run(on_update: Callable[[Tenant, Job], None]) -> FleetSummary:
        return run_as_jobs(jobs, tenant_names=names, canary=canary, snapshot_mode=mode, lock_wait=lock_wait, on_update=on_update)

    def ended(tenant: Tenant, job: Job, printer: Console) -> bool:
        """Print a tenant's job once, when it ends; True once it has."""
        if tenant.name in finished or job.state not in FINAL:
            return tenant.name in finished
        finished.add(tenant.name)
        if not as_json:
            style = "green" if job.state is JobState.SUCCEEDED else "bold red"
            printer.print(f"[{style}]{job.state:<10}[/] {escape(tenant.name)}  job #{job.id}", highlight=False, markup=True)
        return True

    if not live:
        def on_line(tenant: Tenant, job: Job) -> None:
            ended(tenant, job, console)

        return run(on_line)
    _note(f"migrating as jobs of the {jobs.daemon!r} daemon; Ctrl-C stops watching, not the jobs (`jobd top` shows them too)")
    with Progress(
        TextColumn("[bold]{task.fields[tenant]:<20}"), TextColumn("{task.fields[job]:>8}"), BarColumn(),
        MofNCompleteColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True,
    ) as progress:
        def on_update(tenant: Tenant, job: Job) -> None:
            if ended(tenant, job, progress.console):
                if tenant.name in rows:
                    progress.remove_task(rows.pop(tenant.name))
                return
            if tenant.name not in rows:
                rows[tenant.name] = progress.add_task(str(job.state), total=1, tenant=tenant.name, job=f"#{job.id}")
            report = job.progress or {}
            message = report.get("message") or str(job.state)
            if job.state is JobState.RETRYING and job.error:
                message = f"retrying: {job.error}"
            progress.update(rows[tenant.name], completed=report.get("done") or 0, total=report.get("total") or 1, description=message)

        return run(on_update)


def _render_summary(summary: FleetSummary) -> None:
    counts = ", ".join(f"{status.value}: {summary.count(status)}" for status in OutcomeStatus if summary.count(status))
    if summary.ok:
        console.print(f"[green]all {len(summary.outcomes)} tenant(s) ok[/] ({counts}) in {summary.seconds:.1f}s", markup=True)
        return
    table = Table(title=f"jobd migrate — {counts} — {summary.seconds:.1f}s", show_lines=False)
    for column in ("tenant", "status", "at step", "applied", "failed step", "what to do"):
        table.add_column(column, overflow="fold")
    for outcome in sorted(summary.outcomes, key=lambda item: (item.ok, item.tenant)):
        table.add_row(
            outcome.tenant, Text(outcome.status.value, style=_STYLE[outcome.status]), outcome.current or "-",
            str(len(outcome.applied)), outcome.failed_step or "", outcome.error or "",
        )
    if summary.stopped_by_canary:
        table.caption = f"stopped: a canary failed ({', '.join(summary.canaries)})"
    console.print(table)


def _render_preview(preview: FleetStatus) -> None:
    from rich.syntax import Syntax

    for status in preview.tenants:
        header = f"[bold]{escape(status.tenant)}[/] " + escape(f"({status.database}) — {status.state}, at {status.current or '(none)'}")
        console.print(header, highlight=False, markup=True)
        for problem in status.problems:
            console.print(f"  [yellow]! {escape(problem)}[/]", highlight=False, markup=True)
        if status.pending:
            console.print(f"  snapshot: {', '.join(status.snapshot_tables) or 'none'} ({status.snapshot_reason})", highlight=False)
        for label, statements in status.sql.items():
            console.print(f"  [cyan]{escape(label)}[/]", highlight=False, markup=True)
            console.print(Syntax(";\n".join(statements) + ";", "sql", word_wrap=True, padding=(0, 4)))
    console.print("[dim]dry run: nothing was changed[/]", markup=True)


@migrate_app.command()
def status(ctx: typer.Context, config: ConfigOption = None, tenants: TenantsOption = None, as_json: JsonOption = False) -> None:
    """How many tenants are at each step, and which are behind or blocked."""
    from jobd.migrations.status import fleet_status

    report = _guard(lambda: fleet_status(_settings(config, ctx), tenant_names=_names(tenants)))
    if as_json:
        _print_json(report.to_json())
        return
    steps = Table(title=f"tenants per step (latest: {report.latest})")
    steps.add_column("step")
    steps.add_column("tenants", justify="right")
    for step, count in sorted(report.at_each_step().items()):
        steps.add_row(Text(step, style="green" if step == report.latest else ""), str(count))
    console.print(steps)
    attention = [item for item in report.tenants if item.state != "up_to_date"]
    if attention:
        table = Table(title="tenants needing attention")
        for column in ("tenant", "state", "at step", "pending", "problems"):
            table.add_column(column, overflow="fold")
        for item in attention:
            table.add_row(item.tenant, item.state, item.current or "-", str(len(item.pending)), "; ".join(item.problems))
        console.print(table)


@migrate_app.command()
def repair(
    ctx: typer.Context, config: ConfigOption = None, tenants: TenantsOption = None,
    all_tenants: Annotated[bool, typer.Option("--all", help="Repair every tenant")] = False,
    lock_wait: LockWaitOption = 0.0,
) -> None:
    """Accept edited/removed applied steps and clear failed runs (touches only jobd's rows)."""
    from jobd.migrations.catalog import repair_tenants

    if not tenants and not all_tenants:
        _refuse("name the tenants to repair with --tenants a,b, or pass --all")
    results = _guard(lambda: repair_tenants(_settings(config, ctx), tenant_names=_names(tenants), lock_wait=lock_wait))
    for result in results:
        for action in result.actions or ["nothing to repair"]:
            console.print(f"{result.tenant}: {action}", highlight=False)


@migrate_app.command()
def snapshots(
    ctx: typer.Context, config: ConfigOption = None, tenants: TenantsOption = None, as_json: JsonOption = False,
    prune: Annotated[bool, typer.Option("--prune", help="Drop snapshots beyond migrations.snapshot_retention now")] = False,
) -> None:
    """List each tenant's snapshots (with the failure that used one, if any)."""
    from jobd.migrations.catalog import list_snapshots, prune_all

    if prune:
        dropped = _guard(lambda: prune_all(_settings(config, ctx), tenant_names=_names(tenants)))
        console.print(f"dropped {len(dropped)} snapshot database(s)")
    found = _guard(lambda: list_snapshots(_settings(config, ctx), tenant_names=_names(tenants)))
    if as_json:
        _print_json([item.to_json() for item in found])
        return
    table = Table(title="snapshots")
    for column in ("tenant", "run", "taken", "run state", "snapshot", "database", "tables", "failed step"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(item.tenant, item.run_id[:12], f"{item.started_at:%Y-%m-%d %H:%M:%S}", item.run_state,
                      item.snapshot_state, item.snapshot_database or "", ", ".join(item.tables), item.failed_step or "")
    console.print(table)


@migrate_app.command()
def restore(
    ctx: typer.Context,
    tenant: Annotated[str, typer.Argument(help="The tenant to put back as it was before its latest run")],
    config: ConfigOption = None,
    run: Annotated[str | None, typer.Option("--run", help="Expected run id (prefix) of the snapshot")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    lock_wait: LockWaitOption = 0.0,
) -> None:
    """Restore a tenant from its latest run's snapshot (rows written since are lost)."""
    from jobd.migrations.catalog import restore_tenant

    settings = _guard(lambda: _settings(config, ctx))
    if not yes:
        if not sys.stdin.isatty():
            _refuse("restore replaces tables; confirm with --yes")
        typer.confirm(f"Restore tenant {tenant} to its state before its latest run? Rows written since are lost", abort=True)
    info = _guard(lambda: restore_tenant(settings, tenant, run_id=run, lock_wait=lock_wait))
    console.print(f"{info.tenant}: restored {', '.join(info.tables)} from {info.snapshot_database}", highlight=False)


if __name__ == "__main__":
    migrate_app()
