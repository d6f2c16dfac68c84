"""The store reads a status is composed from, in SQL with the driver's placeholders, written once.

``jobd status`` with no master composes the document from the store: its
schema version, the job counts per daemon and state, this host's desired
daemon states, the masters' registry, the recent batches and what waits for
a rate limit; ``jobd batches`` and ``jobd batch ID`` read the batches alike. A master and
``jobd web`` read the same through SQLAlchemy (``Connection.exec_driver_sql``,
``engine.rows_of``); the command reads them on a bare driver connection
(``driver_reads``), without importing SQLAlchemy. Values are parameters,
never pasted in (see ``job_reads_sql``).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from .. import defaults
from ..batch_record import Batch, BatchState, row_to_batch
from ..daemons.plan import Desired
from ..errors import UnknownBatch
from ..rate_limits import DAEMON_KEY, Bucket, RateLimits
from ..states import JobState
from .job_reads_sql import JOBS, Rows, placeholder
from .master_record import MasterRecord, row_to_master

P = defaults.TABLE_PREFIX


class StatusReads:
    """The status reads for one dialect, run through ``rows``."""

    def __init__(self, rows: Rows, dialect: str) -> None:
        self.rows = rows
        self.dialect = dialect
        self.mark = placeholder(dialect)

    def schema_version(self) -> int | None:
        """The store's schema version; None when it has no jobd tables yet (never initialised)."""
        if self.dialect == "sqlite":
            exists = f"SELECT name FROM sqlite_master WHERE type = 'table' AND name = {self.mark}"
        else:
            exists = f"SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = {self.mark}"
        if not self.rows(exists, (f"{P}meta",)):
            return None
        # `key` is a reserved word in MySQL; both dialects read backquotes as a quoted name.
        found = self.rows(f"SELECT value FROM {P}meta WHERE `key` = {self.mark}", ("schema_version",))
        value = found[0]["value"] if found else None
        return int(value) if value is not None else None

    def job_counts(self) -> dict[str, dict[str, int]]:
        """Number of jobs per daemon and state: ``{daemon: {state: n}}``."""
        result: dict[str, dict[str, int]] = {}
        for row in self.rows(f"SELECT daemon, state, count(*) AS n FROM {JOBS} GROUP BY daemon, state", ()):
            result.setdefault(row["daemon"], {})[row["state"]] = int(row["n"])
        return result

    def desired_states(self, host: str | None = None) -> dict[str, Desired]:
        """Every daemon's desired state recorded for ``host``, this host by default (``jobd start/stop/scale DAEMON``)."""
        query = f"SELECT daemon, running, workers FROM {P}daemon_states WHERE host = {self.mark}"
        found = self.rows(query, (host or socket.gethostname(),))
        return {row["daemon"]: Desired(running=bool(row["running"]), workers=row["workers"]) for row in found}

    def masters(self) -> list[MasterRecord]:
        """Every master in the registry, newest first."""
        return [row_to_master(row) for row in self.rows(f"SELECT * FROM {P}masters ORDER BY started_at DESC", ())]

    def batches(self, *, states: Sequence[BatchState] = (), limit: int = 50, before_id: int | None = None) -> list[Batch]:
        """Most recent batches first; ``before_id`` pages on by key."""
        conditions: list[str] = []
        parameters: list[Any] = []
        if states:
            conditions.append(f"state IN ({', '.join([self.mark] * len(states))})")
            parameters.extend(str(state) for state in states)
        if before_id is not None:
            conditions.append(f"id < {self.mark}")
            parameters.append(before_id)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        sql = f"SELECT * FROM {P}batches{where} ORDER BY id DESC LIMIT {self.mark}"
        return [row_to_batch(row) for row in self.rows(sql, (*parameters, limit))]

    def batch(self, batch_id: int, *, lock: bool = False) -> Batch:
        """One batch; ``UnknownBatch`` when no batch has that id. ``lock``: MySQL locks it until the transaction ends."""
        sql = f"SELECT * FROM {P}batches WHERE id = {self.mark}"
        found = self.rows(sql + (" FOR UPDATE" if lock and self.dialect == "mysql" else ""), (batch_id,))
        if not found:
            raise UnknownBatch(f"no batch has id {batch_id}")
        return row_to_batch(found[0])

    def batch_member_states(self, batch_id: int) -> dict[str, int]:
        """How many of a batch's members are in each state now (from the jobs themselves: waiting and running too)."""
        query = f"SELECT state, count(*) AS n FROM {JOBS} WHERE batch_id = {self.mark} GROUP BY state"
        return {str(row["state"]): int(row["n"]) for row in self.rows(query, (batch_id,))}

    def rate_waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]:
        """The limited keys of ``daemon`` with due jobs queued: how many, the tokens now, when the next may start.

        Read without a lock (display data for ``jobd status``). A key never
        claimed yet has no row: it is full.
        """
        if not limits.active:
            return []
        rates = limits.rates()
        mark = self.mark
        stored = {
            str(row["task"]): Bucket(float(row["tokens"]), float(row["updated_at"]), int(row["window_second"]), int(row["window_started"]))
            for row in self.rows(
                f"SELECT task, tokens, updated_at, window_second, window_started FROM {P}rate_buckets WHERE daemon = {mark}", (daemon,),
            )
        }
        queued = {
            str(row["task"]): int(row["n"])
            for row in self.rows(
                f"SELECT task, count(*) AS n FROM {JOBS} WHERE daemon = {mark} AND state = {mark} "
                f"AND (run_at IS NULL OR run_at <= {mark}) GROUP BY task",
                (daemon, str(JobState.QUEUED), now),
            )
        }
        found = []
        for key, rate in rates.items():
            waiting = sum(queued.values()) if key == DAEMON_KEY else queued.get(key, 0)
            if not waiting:
                continue
            bucket = stored[key].refilled(rate, now) if key in stored else Bucket.full(rate, now)
            found.append({
                "key": daemon if key == DAEMON_KEY else f"{daemon}:{key}",
                "task": None if key == DAEMON_KEY else key,
                "per_second": rate.per_second,
                "burst": rate.burst,
                "waiting": waiting,
                "tokens": round(bucket.tokens, 3),
                "started_this_second": bucket.started_this_second,
                "next_token_in": round(max(0.0, bucket.next_start_at(rate) - now), 3),
            })
        return found
