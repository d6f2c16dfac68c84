"""The `jobd` command: thin typer commands over library functions."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from jobd import api, catalogue, rate_status, unserved
from jobd.daemons import client as daemon_client
from jobd.ops import runner
from jobd.config import JobdConfig, load_config
from jobd.control import client
from jobd.daemons.plan import default_desired
from jobd.errors import ExitCode, InvalidArgs, JobdError, MasterNotRunning, WaitTimedOut
from jobd.inventory import load_inventory
from jobd.job import Job
from jobd.states import FINAL, JobState, phrase
from jobd.status import complete_status, daemon_desired, masters_report, status_report  # noqa: F401  (moved to the library)
from jobd.store import open_store

from .options import ConfigOption, JsonOption
from . import daemons as daemon_output
from .output import ago, console, counted, duration, error_console, print_json, reports_errors, when
from . import jobs_file, logs_command, systemd_command

app = typer.Typer(
    name="jobd",
    help="jobd — a background job daemon supervisor that replaces cron.\n\n"
    "Reads jobd.toml (--config, $JOBD_CONFIG, or ./jobd.toml).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DaemonsArgument = Annotated[Optional[list[str]], typer.Argument(help="Daemon names, e.g. mailing sms.", show_default=False)]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Return once the master accepted the request.")]


def _config(path: Path | None) -> JobdConfig:
    return load_config(path)


@app.command()
@reports_errors
def check(config: ConfigOption = None) -> None:
    """Validate jobd.toml and import every task; exit non-zero on any error.

    Example: jobd check --config /etc/jobd/jobd.toml
    Prints each daemon with its tasks, or the file, key and reason of the first problem.
    Publishes the tasks to the store's task catalogue, which jobd.submit checks intents against.
    """
    settings = _config(config)
    inventory = load_inventory(settings)
    console.print(f"[green]ok[/] {settings.source}")
    for daemon, tasks in inventory.items():
        names = ", ".join(sorted(tasks)) or "[yellow]no tasks[/]"
        console.print(f"  {daemon} ({counted(settings.daemons[daemon].workers, 'worker')}): {names}")
    published, note = catalogue.publish_for_check(settings, inventory)
    console.print(f"  task catalogue {'' if published else '[yellow]'}{escape(note)}")


@app.command()
@reports_errors
def init(config: ConfigOption = None) -> None:
    """Create or upgrade the store's tables (idempotent; `jobd start` does it too).

    Example: jobd init
    """
    settings = _config(config)
    store = open_store(settings.store)
    version = store.initialise()
    console.print(f"store {store.url} is at schema v{version}")


@app.command()
@reports_errors
def start(
    daemons: DaemonsArgument = None,
    config: ConfigOption = None,
    foreground: Annotated[bool, typer.Option("--foreground", "-f", help="Stay attached (for systemd and debugging).")] = False,
) -> None:
    """Start the master (all enabled daemons, or only those named), or start daemons on a running master.

    Example: jobd start            (detaches; prints the master's pid when it is ready)
             jobd start mailing sms (no master: starts one running just these; else starts their pools)
             jobd start --foreground
    """
    settings = _config(config)
    names = list(daemons or [])
    if names:
        started = daemon_client.start_running(settings, names)
        if started is not None:
            daemon_output.print_changes(started, "started")
            return
    inventory = runner.preflight(settings)
    if names:
        daemon_client.choose_daemons_for_start(settings, names)
    if foreground:
        raise typer.Exit(runner.run_foreground(settings, inventory))
    pid = runner.start_daemon(settings, inventory)
    console.print(f"jobd master started (pid {pid}); control socket {settings.socket}")


@app.command()
@reports_errors
def stop(
    daemons: DaemonsArgument = None,
    config: ConfigOption = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Send the signal and return at once.")] = False,
    timeout: Annotated[Optional[float], typer.Option(help="Seconds to wait for the master (or the daemons) to stop.")] = None,
) -> None:
    """Stop the master gracefully, or only the named daemons (the master and other daemons go on).

    Example: jobd stop             (the master: no new jobs, running ones finish up to the drain timeout)
             jobd stop sms         (sms only: same drain; its queued jobs wait for `jobd start sms`)
    Jobs still running at the drain timeout go back to the queue.
    """
    settings = _config(config)
    names = list(daemons or [])
    if names:
        results = daemon_client.call_for_daemons(settings, "stop_daemons", {"daemons": names}, names)
        if not no_wait:
            limit = timeout if timeout is not None else daemon_client.stop_timeout(settings, names)
            daemon_client.wait_for(settings, names, daemon_client.is_stopped, limit, "stop")
            results = {name: {**result, "state": "stopped"} for name, result in results.items()}
        daemon_output.print_changes(results, "stopped" if not no_wait else "stopping")
        return
    pid = runner.stop_master(settings, wait=not no_wait, timeout=timeout, report=lambda line: console.print(line, highlight=False))
    console.print(f"jobd master (pid {pid}) {'is stopping' if no_wait else 'stopped'}")


@app.command()
@reports_errors
def restart(
    daemons: Annotated[list[str], typer.Argument(help="Daemon names, e.g. mailing.", show_default=False)],
    config: ConfigOption = None,
    no_wait: NoWaitOption = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every old worker to be replaced.")] = 600.0,
) -> None:
    """Rolling restart: replace each worker of DAEMON one by one, so new task code is imported.

    Example: jobd restart mailing
    A new worker starts first; an old one is retired only when it is idle, so
    the daemon keeps serving and no job is interrupted. A stopped daemon is started.
    """
    settings = _config(config)
    results = daemon_client.call_for_daemons(settings, "restart_daemons", {"daemons": daemons}, daemons)
    if no_wait:
        for name in results:
            console.print(f"{name}: restarting", highlight=False)
        return
    after = daemon_client.wait_for(settings, daemons, daemon_client.is_restarted, timeout, "restart")
    for name, result in results.items():
        old = " ".join(str(pid) for pid in result["old_pids"]) or "-"
        new = " ".join(str(worker["pid"]) for worker in after[name]["workers"] if worker["state"] != "stopping") or "-"
        console.print(f"{name}: restarted (pids {old} → {new})", highlight=False)


@app.command()
@reports_errors
def scale(
    daemon: Annotated[str, typer.Argument(help="Daemon name, e.g. reports.")],
    workers: Annotated[int, typer.Argument(help="Number of workers (0-512).", min=0, max=512)],
    config: ConfigOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the pool has exactly WORKERS workers.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 600.0,
) -> None:
    """Change the number of DAEMON's workers live; kept across master restarts and reloads.

    Example: jobd scale reports 4
    Growing starts workers at once; shrinking retires idle workers first and
    busy ones only after their job, so no running job is killed.
    """
    settings = _config(config)
    result = daemon_client.call_for_daemons(settings, "scale_daemon", {"daemon": daemon, "workers": workers}, [daemon])[daemon]
    if wait and result["state"] == "started":
        daemon_client.wait_for(settings, [daemon], daemon_client.is_scaled, timeout, "scaling")
    note = "" if result["state"] == "started" else f" (it is {result['state']}: applies at `jobd start {daemon}`)"
    console.print(f"{daemon}: {result['was_size']} → {workers} workers{note}", highlight=False)


@app.command()
@reports_errors
def reload(config: ConfigOption = None) -> None:
    """Re-read jobd.toml in the running master (like SIGHUP); an invalid file changes nothing."""
    settings = _config(config)
    result = client.call(settings.socket, "reload", timeout=180)
    console.print(f"reloaded; daemons: {', '.join(result['daemons'])}")


@app.command()
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
    settings = _config(config)
    if daemon is not None:
        try:
            detail = client.call(settings.socket, "daemon_status", {"daemon": daemon})
        except MasterNotRunning:
            detail = daemon_client.status_from_store(settings, daemon)
        if as_json:
            print_json(detail)
        else:
            daemon_output.print_daemon_detail(detail)
        return
    report = status_report(settings)
    if as_json:
        print_json(complete_status(report, settings))  # the documented shape: docs/status-json.md
        return
    master = report["master"]
    if master["running"]:
        console.print(f"master [green]running[/] pid {master['pid']} on {master['host']}, up {duration(master['uptime'])}")
    else:
        console.print("master [red]not running[/] (counts below come from the store)")
    store_health = report.get("store") or {}
    if store_health.get("available") is False:
        console.print(
            f"store [red]unavailable[/] since {when(store_health.get('since'))} ({store_health.get('error')}); "
            "counts below are the last read, workers keep running",
            highlight=False,
        )
    if len(report["masters"]) > 1 or any(not m["alive"] for m in report["masters"]):
        hosts = Table("master", "host", "pid", "state", "daemons", "heartbeat")
        for record in report["masters"]:
            state = record["state"] if record["alive"] or record["state"] in ("stopped", "dead") else "silent"
            hosts.add_row(record["id"], record["host"], str(record["pid"]), state, ", ".join(record["daemons"]), f"{record['heartbeat_age']:.0f}s ago")
        console.print(hosts)
    # busy/idle per worker are in the workers table below; this one fits 80 columns
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for header in ("daemon", "desired", "actual", "queued", "running", "retry", "done", "dead", "cancel"):
        table.add_column(header, no_wrap=True, min_width=len(header))
    for name, row in report["daemons"].items():
        counts = row["counts"]
        table.add_row(
            name, daemon_output.desired_text(row), daemon_output.actual_text(row),
            str(counts.get("queued", 0) + counts.get("scheduled", 0)), str(counts.get("running", 0)),
            str(counts.get("retrying", 0)), str(counts.get("succeeded", 0)), str(counts.get("dead", 0)),
            str(counts.get("cancelled", 0)),
        )
    console.print(table)
    for note in unserved.notes(report) + rate_status.notes(report):  # jobs nobody runs, unknown states, rate waits
        console.print(f"[yellow]{escape(note)}[/]", highlight=False)
    workers = daemon_output.workers_table(report["daemons"])
    if workers is not None:
        console.print(workers)


_STATE_NAMES = frozenset(str(state) for state in JobState)


@app.command()
@reports_errors
def jobs(
    config: ConfigOption = None,
    state: Annotated[Optional[list[str]], typer.Option("--state", "-s", help="Filter by state (repeatable; any stored value).")] = None,
    daemon: Annotated[Optional[str], typer.Option("--daemon", "-d")] = None,
    task: Annotated[Optional[str], typer.Option("--task", "-t")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List recent jobs, newest first.

    Example: jobd jobs --state dead --daemon mailing
    """
    settings = _config(config)
    # Any stored value: rows an application wrote with another state (before schema v4
    # refused them) must be listable. A name that is not a jobd state just matches nothing.
    states: list[JobState | str] = [JobState(value) if value in _STATE_NAMES else value for value in state or []]
    found = open_store(settings.store).jobs.list(states=states, daemon=daemon, task=task, limit=limit)
    unknown = sorted({str(value) for value in states} - _STATE_NAMES)
    if unknown and not found:  # a typo, most likely: say so (stderr, so --json stays parseable)
        error_console.print(f"no job in {', '.join(map(repr, unknown))}: not a jobd state "
                          f"(jobd states: {', '.join(sorted(_STATE_NAMES))})", highlight=False)
    if as_json:
        print_json([job.to_dict() for job in found])
        return
    now = time.time()
    table = Table("id", "daemon", "task", "state", "attempts", "created", "error")
    for job in found:
        table.add_row(str(job.id), job.daemon, job.task, str(job.state), str(job.attempts), ago(job.created_at, now), (job.error or "")[:60])
    console.print(table)


@app.command("job")
@reports_errors
def job_detail(job_id: int, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Everything about one job: args, state, attempts, progress, checkpoint, error and traceback.

    Example: jobd job 42
    """
    settings = _config(config)
    job = open_store(settings.store).jobs.get(job_id)
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
            console.print(f"[bold]{key}[/]: {json.dumps(value) if isinstance(value, (dict, list)) else value}", highlight=False)
    if traceback:
        console.print(f"[bold]{traceback_label}[/]:")
        console.print(traceback, highlight=False, markup=False)


def job_fields_for_people(job: Job) -> dict[str, Any]:
    """A job's fields as `jobd job ID` shows them: nothing stale, every error labelled with its attempt.

    Progress is what a running attempt last reported, so once a job has
    ended it is left out (a succeeded job stuck at "80%" misleads). An error
    kept on a job that later succeeded belongs to an earlier attempt: it is
    labelled so, not shown as if it were the outcome.
    """
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


@app.command()
@reports_errors
def trigger(
    daemon: Annotated[str, typer.Argument(help="Daemon that runs the task, e.g. mailing.")],
    task: Annotated[str, typer.Argument(help="Registered task name, e.g. mailing.send_campaign.")],
    arg: Annotated[Optional[list[str]], typer.Option("--arg", "-a", help="k=v argument (v parsed as JSON if it can be). Repeatable.")] = None,
    json_args: Annotated[Optional[str], typer.Option("--json", help="All args as one JSON object; @FILE reads it from a file, - from stdin.")] = None,
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    delay: Annotated[Optional[float], typer.Option(help="Run no earlier than this many seconds from now.")] = None,
    unique_key: Annotated[Optional[str], typer.Option(help="Do nothing if an unfinished job has this key.")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="Wait for the job and exit with its outcome.")] = False,
    wait_without_master: Annotated[bool, typer.Option("--wait-without-master", help="With --wait: wait even if no live master runs DAEMON now.")] = False,
    reuse_cached: Annotated[bool, typer.Option("--reuse-cached", help="Print the id of a fresh cached run (cache_ttl tasks) instead of running again.")] = False,
    timeout: Annotated[float, typer.Option(help="With --wait: give up after this many seconds.")] = 3600.0,
    from_file: Annotated[Optional[str], typer.Option("--from-file", help="One job per line, each a JSON object of args (- for stdin); all submitted or none.")] = None,
    config: ConfigOption = None,
) -> None:
    """Submit an intent: run TASK on DAEMON now (or after --delay). Prints the job id.

    Example: jobd trigger mailing mailing.send_campaign --arg campaign_id=42
             jobd trigger reports reports.build --json '{"kind": "sales"}' --wait
    With --wait, exits 0 if the job succeeded, 1 if it ended dead or cancelled,
    6 if --timeout ran out first, and 4 at once if no live master runs DAEMON
    (the job stays queued; --wait-without-master waits anyway).
    With --from-file jobs.jsonl, one job per line; prints how many and their ids.
    """
    settings = _config(config)
    run_at = time.time() + delay if delay else None
    if from_file is not None:
        if arg or json_args is not None or unique_key or wait or reuse_cached:
            raise InvalidArgs("--from-file takes each job's args from its lines: no --arg, --json, --unique-key, --wait or --reuse-cached")
        print(jobs_file.submit_file(settings, daemon, task, from_file, priority=priority, run_at=run_at), flush=True)
        return
    args = parse_trigger_args(arg or [], json_args)
    job_id = api.submit(daemon, task, args, run_at=run_at, priority=priority, unique_key=unique_key, config=settings,
                        reuse_cached=reuse_cached)
    print(job_id, flush=True)
    if not wait:
        return
    if not wait_without_master and not daemon_is_served(settings, daemon):
        raise MasterNotRunning(
            f"no live master runs daemon {daemon!r}: job {job_id} waits in the queue until one does "
            f"(`jobd start`; or --wait-without-master to wait for it anyway)"
        )
    job = wait_for_job(settings, job_id, timeout)
    if job.state is JobState.SUCCEEDED:
        if job.result is not None:
            print(json.dumps(job.result))
        return
    console.print(f"job {job_id} ended {job.state}: {job.error}", highlight=False)
    raise typer.Exit(int(ExitCode.FAILURE))


def parse_trigger_args(pairs: list[str], json_args: str | None) -> dict[str, Any]:
    """Args from ``--json`` and ``--arg k=v`` (k=v wins); InvalidArgs on anything malformed."""
    args: dict[str, Any] = {}
    if json_args is not None:
        text, where = read_json_option(json_args)
        try:
            parsed = json.loads(text, parse_constant=_refuse_non_json_number)
        except ValueError as error:
            raise InvalidArgs(f"{where} is not valid JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise InvalidArgs("--json must be a JSON object such as '{\"campaign_id\": 42}'")
        args.update(parsed)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidArgs(f"--arg {pair!r} must look like key=value")
        try:
            args[key] = json.loads(value)
        except ValueError:
            args[key] = value
    return args


def read_json_option(value: str) -> tuple[str, str]:
    """The text of ``--json``: inline, ``@FILE`` or ``-`` (stdin) for args too large for a command line."""
    if value == "-":
        return sys.stdin.read(), "--json - (standard input)"
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_text(encoding="utf-8"), f"--json {value}"
        except (OSError, UnicodeDecodeError) as error:
            raise InvalidArgs(f"--json {value}: cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    return value, "--json"


def _refuse_non_json_number(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (JSON has no NaN or Infinity)")


def daemon_is_served(settings: JobdConfig, daemon: str) -> bool:
    """Whether a live master on any host runs ``daemon`` (its heartbeat lists it)."""
    store = open_store(settings.store)
    now = time.time()
    return any(
        daemon in record.daemons and record.is_alive(now, settings.heartbeat_lease) and record.state == "running"
        for record in store.masters.all()
    )


def wait_for_job(settings: JobdConfig, job_id: int, timeout: float) -> Job:
    """Poll the store until the job reaches a final state; JobdError at the deadline."""
    store = open_store(settings.store)
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        job = store.jobs.get(job_id)
        if job.state in FINAL:
            return job
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"job {job_id} is still {job.state} after {timeout:g}s (it may still finish; see `jobd job {job_id}`)")
        time.sleep(delay)
        delay = min(0.5, delay * 1.5)


@app.command()
@reports_errors
def cancel(job_id: int, config: ConfigOption = None) -> None:
    """Cancel a job: a waiting one at once; a running one is asked to stop (ctx.cancelled).

    Example: jobd cancel 42
    """
    settings = _config(config)
    job = open_store(settings.store).jobs.cancel(job_id)
    api.wake_master(settings.socket)
    if job.state is JobState.CANCELLED:
        console.print(f"job {job_id} cancelled")
    else:
        console.print(f"job {job_id} {phrase(job.state)}; its master was asked to cancel it")


@app.command()
@reports_errors
def retry(job_id: int, config: ConfigOption = None) -> None:
    """Queue a dead or cancelled job again with a fresh set of attempts.

    Example: jobd retry 42
    """
    settings = _config(config)
    job = open_store(settings.store).jobs.retry(job_id)
    api.wake_master(settings.socket)
    console.print(f"job {job_id} {phrase(job.state)} again")


@app.command()
@reports_errors
def top(
    config: ConfigOption = None,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit (for scripts).")] = False,
    daemon: Annotated[Optional[str], typer.Option("--daemon", "-d", help="Show only this daemon.")] = None,
) -> None:
    """Live dashboard: daemons, running jobs with progress and ETA, recent failures. `q` quits.

    Example: jobd top
             jobd top --once --daemon mailing
    Reads memcached when configured (every host), else the master; the store when no master answers.
    """
    from jobd.dashboard import Dashboard

    from . import top as dashboard_view

    settings = _config(config)
    if daemon is not None:
        settings.daemon(daemon)  # UnknownDaemon naming the known ones
    dashboard = Dashboard(settings)
    try:
        if once:
            dashboard_view.once(dashboard, console, daemon)
        else:
            dashboard_view.run(dashboard, console, daemon)
    finally:
        dashboard.close()


@app.command()
@reports_errors
def web(
    config: ConfigOption = None,
    bind: Annotated[Optional[str], typer.Option("--bind", help="host:port to listen on (default: [web] bind, 127.0.0.1:8686).")] = None,
) -> None:
    """Live web dashboard and HTTP JSON API (/api/v1/), in a process of its own.

    Example: jobd web                       (http://127.0.0.1:8686/)
             JOBD_WEB_ADMIN_TOKEN=... jobd web --bind 0.0.0.0:8686
    A non-loopback address needs tokens ([web] read_token/admin_token or the environment). See docs/web.md.
    """
    from jobd.web.server import serve

    serve(_config(config), bind)


from . import schedules as _schedule_commands  # noqa: E402

_schedule_commands.register(app)

from .migrate import migrate_app  # noqa: E402

app.add_typer(migrate_app, name="migrate", help="Per-tenant schema migrations behind snapshots (see docs/migrations.md).")
# Issue 7 (production): job logs and systemd units, each in its own module.
app.command("logs")(logs_command.logs)
app.add_typer(systemd_command.app, name="systemd")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
