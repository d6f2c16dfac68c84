"""The alert hook: a shell command run when a job goes dead or a daemon's workers crash-loop.

The command comes from the config only (``alert_command``), never from a
job or a request: whoever can write jobd.toml can already run code as jobd.
It gets the event as one JSON object on stdin (and its name in
``$JOBD_ALERT_EVENT``), so a one-liner can forward it to Slack, PagerDuty or
mail. It must never hold the master up:

* stdin is an unlinked temporary file, not a pipe, so starting the command
  never blocks on a reader, whatever the size of the event;
* the master loop only polls it (``poll``); a command still running after
  ``alert_timeout`` is killed with its whole process group;
* at most ``MAX_RUNNING_ALERTS`` run at once; more are dropped with an
  error in the log (an alert storm must not fork-bomb the host).

Each event fires once: the master calls ``fire`` where the job's dead state
is recorded, and ``CrashLoopWatch`` fires once per crash streak.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import defaults
from . import metrics

log = logging.getLogger("jobd.alerts")

ALERT_EVENT_VERSION = 1


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    event: str
    started_at: float


class Alerter:
    """Runs the configured alert command for events, without blocking the caller."""

    def __init__(
        self,
        command: str | None,
        timeout: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_running: int = defaults.MAX_RUNNING_ALERTS,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.clock = clock
        self.max_running = max_running
        self.running: list[_Running] = []

    def fire(self, event: str, details: dict[str, Any]) -> bool:
        """Start the command for ``event``; False if none is configured or too many run already."""
        if not self.command:
            return False
        self.poll()
        if len(self.running) >= self.max_running:
            log.error("alert %s dropped: %s alert commands are still running", event, len(self.running))
            metrics.count_alert(event, "dropped")
            return False
        payload = json.dumps(
            {"event": event, "version": ALERT_EVENT_VERSION, "time": time.time(), **details}, default=str
        ).encode()
        try:
            with tempfile.TemporaryFile() as stdin:
                stdin.write(payload)
                stdin.seek(0)
                process = subprocess.Popen(
                    ["/bin/sh", "-c", self.command], stdin=stdin, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, start_new_session=True,
                    env={**os.environ, "JOBD_ALERT_EVENT": event},
                )
        except OSError as error:
            log.error("alert %s: cannot run %r: %s", event, self.command, error)
            metrics.count_alert(event, "error")
            return False
        self.running.append(_Running(process, event, self.clock()))
        log.info("alert %s: started %r (pid %s)", event, self.command, process.pid)
        return True

    def poll(self) -> None:
        """Reap finished commands; kill those past the timeout. Cheap; called from the master loop."""
        still = []
        now = self.clock()
        for alert in self.running:
            code = alert.process.poll()
            if code is None:
                if now - alert.started_at > self.timeout:
                    log.error("alert %s: %r still running after %.0fs; killed", alert.event, self.command, self.timeout)
                    _kill_group(alert.process)
                    alert.process.wait()
                    _close(alert.process)
                    metrics.count_alert(alert.event, "timeout")
                    continue
                still.append(alert)
                continue
            errors = _stderr_tail(alert.process)
            if code == 0:
                metrics.count_alert(alert.event, "ok")
            else:
                log.error("alert %s: %r exited with %s: %s", alert.event, self.command, code, errors)
                metrics.count_alert(alert.event, "error")
        self.running = still

    def close(self, wait: float) -> None:
        """At shutdown: give running commands up to ``wait`` seconds more, then kill them."""
        deadline = self.clock() + min(wait, self.timeout)
        while self.running and self.clock() < deadline:
            self.poll()
            time.sleep(0.05)
        for alert in self.running:
            _kill_group(alert.process)
            alert.process.wait()
            _close(alert.process)
        self.running = []


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _stderr_tail(process: subprocess.Popen[bytes]) -> str:
    # The command has exited, so reading its stderr cannot block for long; a
    # grandchild holding the pipe open is bounded by reading what is there.
    assert process.stderr is not None
    os.set_blocking(process.stderr.fileno(), False)
    try:
        data = process.stderr.read(4096) or b""
    except OSError:
        data = b""
    _close(process)
    return data.decode(errors="replace").strip()[-500:]


def _close(process: subprocess.Popen[bytes]) -> None:
    if process.stderr is not None:
        process.stderr.close()


class CrashLoopWatch:
    """Decides when a daemon's crash streak is worth one alert (pure)."""

    def __init__(self, threshold: int = defaults.CRASH_LOOP_ALERT_STREAK) -> None:
        self.threshold = threshold
        self._alerted: set[str] = set()

    def check(self, daemon: str, crash_streak: int) -> bool:
        """True once when ``crash_streak`` reaches the threshold; again only after a streak ended."""
        if crash_streak < self.threshold:
            self._alerted.discard(daemon)
            return False
        if daemon in self._alerted:
            return False
        self._alerted.add(daemon)
        return True
