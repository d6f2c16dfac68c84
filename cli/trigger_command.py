"""`jobd trigger DAEMON TASK`: submit an intent from the command line, and optionally wait for it.

Everything about submitting from the CLI lives here: the command, how its
arguments become the job's args (``--arg k=v``, ``--json``, ``@FILE``,
``-``), and the wait. The submit itself is ``jobd.ops.jobs.submit_intent``.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from jobd.defaults import PRIORITY_RANGE
from jobd.errors import ExitCode, InvalidArgs, MasterNotRunning

from .options import ConfigOption, load_settings
from .output import console, reports_errors


@reports_errors
def trigger(
    daemon: Annotated[str, typer.Argument(help="Daemon that runs the task, e.g. mailing.")],
    task: Annotated[str, typer.Argument(help="Registered task name, e.g. mailing.send_campaign.")],
    arg: Annotated[Optional[list[str]], typer.Option("--arg", "-a", help="k=v argument (v parsed as JSON if it can be). Repeatable.")] = None,
    json_args: Annotated[Optional[str], typer.Option("--json", help="All args as one JSON object; @FILE reads it from a file, - from stdin.")] = None,
    priority: Annotated[int, typer.Option(min=PRIORITY_RANGE[0], max=PRIORITY_RANGE[1], help="Higher runs first.")] = 0,
    delay: Annotated[Optional[float], typer.Option(min=0, help="Run no earlier than this many seconds from now.")] = None,
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
    if delay is not None and not math.isfinite(delay):
        raise InvalidArgs(f"--delay must be a finite number of seconds, not {delay}")
    run_at = time.time() + delay if delay else None
    args: dict[str, Any] | None = None  # parsed once: --json - reads standard input
    if from_file is None and not (wait or reuse_cached):
        from jobd.config_digest import config_digest
        from jobd.ops.quick_submit import submit_quickly

        digest = config_digest(config)  # ConfigError first, as from load_settings below
        args = parse_trigger_args(arg or [], json_args)
        quick_id = submit_quickly(digest, daemon, task, args, run_at=run_at, priority=priority, unique_key=unique_key)  # None: the full submit
        if quick_id is not None:
            print(quick_id, flush=True)
            return
    from jobd.ops.jobs import daemon_is_served, submit_intent, wait_for_job
    from jobd.states import JobState

    settings = load_settings(config, with_schedule=False)
    if from_file is not None:
        if arg or json_args is not None or unique_key or wait or reuse_cached:
            raise InvalidArgs("--from-file takes each job's args from its lines: no --arg, --json, --unique-key, --wait or --reuse-cached")
        from .jobs_file import submit_file

        print(submit_file(settings, daemon, task, from_file, priority=priority, run_at=run_at), flush=True)
        return
    if args is None:
        args = parse_trigger_args(arg or [], json_args)
    job_id = submit_intent(settings, daemon, task, args, run_at=run_at, priority=priority, unique_key=unique_key,
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
