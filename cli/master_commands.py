"""Commands that run or steer the master: check, init, start, stop, restart, scale, reload, top, web.

Each is thin over a library function (``jobd.ops.runner``, ``jobd.daemons.client``,
the control socket); library code is imported when the command runs (see
``cli.jobs_commands``).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .options import ConfigOption, load_settings
from .output import console, counted, reports_errors

DaemonsArgument = Annotated[Optional[list[str]], typer.Argument(help="Daemon names, e.g. mailing sms.", show_default=False)]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="Return once the master accepted the request.")]


@reports_errors
def check(config: ConfigOption = None) -> None:
    """Validate jobd.toml and import every task; exit non-zero on any error.

    Example: jobd check --config /etc/jobd/jobd.toml
    Prints each daemon with its tasks, or the file, key and reason of the first problem.
    Publishes the tasks to the store's task catalogue, which jobd.submit checks intents against.
    """
    from rich.markup import escape

    from jobd import catalogue
    from jobd.inventory import load_inventory

    settings = load_settings(config)
    inventory = load_inventory(settings)
    console.print(f"[green]ok[/] {escape(str(settings.source))}", markup=True)
    for daemon, tasks in inventory.items():
        names = escape(", ".join(sorted(tasks))) or "[yellow]no tasks[/]"
        console.print(f"  {daemon} ({counted(settings.daemons[daemon].workers, 'worker')}): {names}", markup=True)
    published, note = catalogue.publish_for_check(settings, inventory)
    console.print(f"  task catalogue {'' if published else '[yellow]'}{escape(note)}", markup=True)


@reports_errors
def init(config: ConfigOption = None) -> None:
    """Create or upgrade the store's tables (idempotent; `jobd start` does it too).

    Prints "store URL created at schema vN", "… is at schema vN", or for an
    upgrade the versions, how long it took and what each new version changed.

    Example: jobd init
    """
    from jobd.ops.jobs import initialise_store

    for line in initialise_store(load_settings(config)).describe():
        console.print(line, highlight=False)


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
    from jobd.daemons import client as daemon_client
    from jobd.ops import runner

    from . import daemons as daemon_output

    settings = load_settings(config)
    names = list(daemons or [])
    if names:
        started = daemon_client.start_running(settings, names)
        if started is not None:
            daemon_output.print_changes(started, "started")
            return
    checked = runner.preflight(settings)
    if names:
        daemon_client.choose_daemons_for_start(settings, names)
    if foreground:
        runner.exec_master(checked)  # the master runs without the CLI's libraries (jobd.ops.master_main)
    pid = runner.start_daemon(checked)
    console.print(f"jobd master started (pid {pid}); control socket {settings.socket}")


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
    from jobd.daemons import client as daemon_client
    from jobd.ops import runner

    from . import daemons as daemon_output

    settings = load_settings(config)
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
    from jobd.daemons import client as daemon_client

    settings = load_settings(config)
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
    from jobd.daemons import client as daemon_client

    settings = load_settings(config)
    result = daemon_client.call_for_daemons(settings, "scale_daemon", {"daemon": daemon, "workers": workers}, [daemon])[daemon]
    if wait and result["state"] == "started":
        daemon_client.wait_for(settings, [daemon], daemon_client.is_scaled, timeout, "scaling")
    note = "" if result["state"] == "started" else f" (it is {result['state']}: applies at `jobd start {daemon}`)"
    console.print(f"{daemon}: {result['was_size']} → {workers} workers{note}", highlight=False)


@reports_errors
def reload(config: ConfigOption = None) -> None:
    """Re-read jobd.toml in the running master (like SIGHUP); an invalid file changes nothing."""
    from jobd.control import client

    settings = load_settings(config)
    result = client.call(settings.socket, "reload", timeout=180)
    console.print(f"reloaded; daemons: {', '.join(result['daemons'])}")


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

    settings = load_settings(config)
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

    serve(load_settings(config), bind)
