"""The keys of `jobd top`: what each does to the view, as a pure state machine.

``TopControls.on_key`` takes a key and the daemons on screen and returns the
next state, so every key is tested without a terminal; ``cli/top.py`` reads
keys and draws.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

#: How the running-jobs table can be ordered, in the order `s` cycles through them.
SORTS: dict[str, tuple[str, bool]] = {
    "job": ("job_id", False),
    "elapsed": ("elapsed", True),  # longest-running first
    "progress": ("percent", True),  # furthest along first
    "daemon": ("daemon", False),
}

KEYS_HELP = (
    ("q", "quit"),
    ("?", "show or hide this help"),
    ("d", "next daemon (all → each daemon → all)"),
    ("a", "all daemons again"),
    ("s", "sort running jobs: " + " → ".join(SORTS)),
)


@dataclass(frozen=True)
class TopControls:
    daemon: str | None = None  # None: every daemon
    sort: str = "job"
    help_shown: bool = False
    quit: bool = False

    def on_key(self, key: str, daemons: list[str]) -> "TopControls":
        """The state after ``key``; ``daemons`` are the names `d` cycles through (sorted)."""
        if key in ("q", "Q", "\x03", "\x04", ""):
            return replace(self, quit=True)
        if key == "?":
            return replace(self, help_shown=not self.help_shown)
        if key == "a":
            return replace(self, daemon=None)
        if key == "d":
            return replace(self, daemon=_next_daemon(self.daemon, sorted(daemons)))
        if key == "s":
            names = list(SORTS)
            return replace(self, sort=names[(names.index(self.sort) + 1) % len(names)])
        return self

    def footer(self) -> str:
        shown = self.daemon or "all"
        return f"q quit  ? keys  d daemon: {shown}  s sort: {self.sort}"

    def sorted_running(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The running jobs in the chosen order; jobs that lack the value (no progress yet) last."""
        key, descending = SORTS[self.sort]
        known = [job for job in jobs if job.get(key) is not None]
        unknown = [job for job in jobs if job.get(key) is None]
        return sorted(known, key=lambda job: job[key], reverse=descending) + unknown

def _next_daemon(current: str | None, daemons: list[str]) -> str | None:
    if not daemons:
        return None
    if current is None or current not in daemons:
        return daemons[0] if current is None else None
    index = daemons.index(current) + 1
    return daemons[index] if index < len(daemons) else None
