"""The operator's side of managing daemons: ask the running master, and wait until it is done.

``jobd start/stop/restart/scale DAEMON`` are thin over these functions, so
tests and scripts can call them directly. The master does the work on its
loop; these functions only send the request, then watch its status until
the daemon got where it was asked to go (or a deadline passes).
"""

from __future__ import annotations

import time
from typing import Any

from ..config import JobdConfig
from ..control import client
from .control import store_queue_report
from .detail import stopped_daemon_detail
from .plan import Desired, default_desired
from ..errors import JobdError, MasterNotRunning
from ..store import open_store
from ..store.errors import raised_as_unavailable

POLL_SECONDS = 0.1


def call_for_daemons(config: JobdConfig, op: str, args: dict[str, Any], names: list[str]) -> Any:
    """Send ``op``; when no master answers, an unknown name is still reported as such (exit 2)."""
    try:
        return client.call(config.socket, op, args, timeout=60)
    except MasterNotRunning:
        for name in names:
            config.daemon(name)  # raises UnknownDaemon naming the known ones
        raise


def start_running(config: JobdConfig, names: list[str]) -> dict[str, Any] | None:
    """Start ``names`` on the running master; None when no master runs (the caller starts one)."""
    try:
        result: dict[str, Any] = call_for_daemons(config, "start_daemons", {"daemons": names}, names)
    except MasterNotRunning:
        return None
    return result


@raised_as_unavailable()
def choose_daemons_for_start(config: JobdConfig, names: list[str]) -> None:
    """Before a master starts with named daemons: exactly those run, now and after later restarts.

    The named daemons are recorded as started and every other one as
    stopped (keeping any ``jobd scale`` count), so `jobd status` says why a
    daemon is down and ``jobd start OTHER`` brings it up.
    """
    for name in names:
        config.daemon(name)
    store = open_store(config.store)
    try:
        stored = store.daemon_states.load()
        for name, settings in config.daemons.items():
            current = stored.get(name) or default_desired(settings)
            store.daemon_states.save(name, Desired(running=name in names, workers=current.workers))
    finally:
        store.dispose()


def wait_for(config: JobdConfig, names: list[str], done: Any, timeout: float, what: str) -> dict[str, Any]:
    """Poll the master's status until ``done(daemon_status)`` holds for every name."""
    deadline = time.monotonic() + timeout
    while True:
        daemons = client.call(config.socket, "status")["daemons"]
        if all(done(daemons[name]) for name in names):
            return daemons
        if time.monotonic() > deadline:
            late = [name for name in names if not done(daemons[name])]
            raise JobdError(f"{', '.join(late)}: {what} not finished after {timeout:g}s; see `jobd status`")
        time.sleep(POLL_SECONDS)


def is_stopped(daemon: dict[str, Any]) -> bool:
    return daemon.get("state") == "stopped"


def is_restarted(daemon: dict[str, Any]) -> bool:
    return daemon.get("restart") is None and daemon.get("state") == "started"


def is_scaled(daemon: dict[str, Any]) -> bool:
    serving = [w for w in daemon["workers"] if w["state"] in ("starting", "idle", "busy")]
    return len(serving) == daemon["size"] and len(daemon["workers"]) == daemon["size"]


def stop_timeout(config: JobdConfig, names: list[str]) -> float:
    """How long a stop may take: the longest drain timeout, plus the kill grace and some slack."""
    return max((config.drain_timeout_for(name) for name in names if name in config.daemons), default=config.drain_timeout) + 15


@raised_as_unavailable()
def status_from_store(config: JobdConfig, name: str) -> dict[str, Any]:
    """`jobd status DAEMON` while no master runs: desired state, counts, queue and failures."""
    settings = config.daemon(name)
    store = open_store(config.store)
    try:
        store.require_schema()
        desired = store.daemon_states.load().get(name) or default_desired(settings)
        counts = store.jobs.counts().get(name, {})
        report = store_queue_report(store, name)
    finally:
        store.dispose()
    return stopped_daemon_detail(name, settings, desired, counts, report)
