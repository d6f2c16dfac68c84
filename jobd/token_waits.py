"""When a rate-limited daemon's next token is due, so the master claims then and not only at its next poll."""

from __future__ import annotations


class TokenWaits:
    """Per daemon, the time (epoch) its last claim said a rate lets its waiting jobs go."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}

    def note(self, daemon: str, at: float | None) -> None:
        """Remember ``at`` for ``daemon`` (None: nothing of it waits for a token)."""
        if at is None:
            self._due.pop(daemon, None)
        else:
            self._due[daemon] = at

    def seconds_until_next(self, now: float) -> float | None:
        """How long until the soonest token (0 when one is due); None when no daemon waits for one."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - now)

    def take_due(self, now: float) -> list[str]:
        """The daemons whose token is due at ``now``, forgotten here until a claim notes them again."""
        due = [daemon for daemon, at in self._due.items() if at <= now]
        for daemon in due:
            del self._due[daemon]
        return due
