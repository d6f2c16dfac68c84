"""Reading the status: ``jobd status`` (and ``--json``), ``jobd web``, and the schedule rows.

``read_status`` asks the local master first (its ``MasterStatus`` over the
control socket) and falls back on the store's counts when none answers. It
then adds what tools need without guessing: every master the store knows
(all hosts), and with ``live_activity`` the jobs running on every host with
their progress (memcached, when configured). The result is a typed
``StatusReport``; ``to_json`` is the documented document.

The store is reached through ``raised_as_unavailable``: a store that fails
is jobd's ``StoreUnavailable`` here, never a SQLAlchemy error.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import unserved
from ..batch_record import Batch, BatchState
from ..config import JobdConfig, load_schedule
from ..control import client
from ..daemons.plan import Desired
from ..errors import MasterNotRunning, StoreUnavailable
from ..rate_limits import RateLimits
from ..store.store_core import StoreCore

if TYPE_CHECKING:
    from ..store.opening import Store
from ..store.errors import raised_as_unavailable
from ..store.master_record import MasterRecord
from .compose import recent_batches, registered, report_from_store, with_last_outcomes, with_live_activity, with_rate_waits
from .model import DaemonStatus, KnownMaster, MasterStatus, RegisteredMaster, StatusReport


class StoreSource:
    """The status reads (``compose.StatusSource``) on an open store (``StoreCore``), each on a connection of its own."""

    def __init__(self, store: StoreCore) -> None:
        self.store = store

    def schema_version(self) -> int | None:
        return self.store.version()

    def job_counts(self) -> dict[str, dict[str, int]]:
        return self.store.jobs.counts()

    def desired_states(self, host: str | None = None) -> dict[str, Desired]:
        return self.store.daemon_states.load(host)

    def masters(self) -> list[MasterRecord]:
        return self.store.masters.all()

    def batches(self, *, states: Sequence[BatchState] = (), limit: int = 50, before_id: int | None = None) -> list[Batch]:
        return self.store.batches.list(states=states, limit=limit, before_id=before_id)

    @raised_as_unavailable()
    def rate_waits(self, daemon: str, limits: RateLimits, now: float) -> list[dict[str, Any]]:
        return self.store.jobs.rate_buckets.waits(daemon, limits, now)


def read_status(
    settings: JobdConfig, store: StoreCore | None = None, *, now: float | None = None, live_activity: bool = True,
) -> StatusReport:
    """The status: from the master if it answers, else from the store.

    A long-lived caller (``jobd web``) passes its ``store``. Each
    rate-limited daemon says what waits for its rate (from the store).
    ``live_activity`` reads memcached (when configured) for other hosts'
    masters and running jobs.
    """
    now = time.time() if now is None else now
    return compose_status(settings, local_master_status(settings), store, now=now, live_activity=live_activity)


def compose_status(
    settings: JobdConfig, live: MasterStatus | None, store: StoreCore | None = None, *, now: float, live_activity: bool = True,
) -> StatusReport:
    """``read_status`` once the local master's own status is known (None: no master answered).

    A running master composes it too, for the ``status_report`` operation
    (``jobd.master.status_answer``), with the same code and its own store.
    """
    store = store or _open(settings)  # connects on first use: not at all while a master answers from memory
    report = _from_master(settings, live, store, now) if live is not None else _from_store(settings, store, now)
    report = with_rate_waits(report, settings, StoreSource(store), now)
    if live_activity:
        report = with_live_activity(report, settings, now)
    return replace(report, batches=_recent_batches(store, now))


def _recent_batches(store: StoreCore, now: float) -> list[dict[str, Any]]:
    """Open batches and those that ended in the last hour; none while the store cannot be read."""
    try:
        with raised_as_unavailable():
            return recent_batches(StoreSource(store), now)
    except StoreUnavailable:
        return []


def full_status(settings: JobdConfig, *, store: StoreCore | None = None, now: float | None = None) -> dict[str, Any]:
    """The ``status --json`` document (docs/status-json.md), for the CLI and ``jobd web`` alike."""
    return read_status(settings, store, now=now).to_json()


def local_master_status(settings: JobdConfig) -> MasterStatus | None:
    """The local master's own status, or None if none answers on the control socket."""
    try:
        return MasterStatus.from_wire(client.call(settings.socket, "status"))
    except MasterNotRunning:
        return None


def _from_master(settings: JobdConfig, live: MasterStatus, store: StoreCore, now: float) -> StatusReport:
    daemons = {
        name: DaemonStatus(size=pool.size, counts=pool.counts, desired=pool.desired, state=pool.state, pool=pool)
        for name, pool in live.daemons.items()
    }
    masters: list[KnownMaster] = []
    unseen: dict[str, list[dict[str, Any]]] = {}
    try:
        with raised_as_unavailable():
            masters = list(registered_masters(settings, store, now))
            unseen = unserved.from_store(store, lease=settings.heartbeat_lease)
    except StoreUnavailable:  # the master answered from memory; its store is down
        pass
    return StatusReport(
        generated_at=now, master=live.master, daemons=daemons, masters=masters, store=live.store, lease=live.lease,
        unserved=unseen.get("unserved"), unknown_states=unseen.get("unknown_states"),
    )


@raised_as_unavailable()
def _from_store(settings: JobdConfig, store: StoreCore, now: float) -> StatusReport:
    return report_from_store(settings, StoreSource(store), now)


def registered_masters(settings: JobdConfig, store: StoreCore, now: float | None = None) -> list[RegisteredMaster]:
    """Every master known to the store (all hosts), newest first; stopped ones for an hour."""
    if store.version() is None:
        return []
    return registered(store.masters.all(), settings.heartbeat_lease, time.time() if now is None else now)


def masters_report(settings: JobdConfig, store: StoreCore | None = None) -> list[dict[str, Any]]:
    """``registered_masters`` as plain data (``jobd web``'s masters panel)."""
    with raised_as_unavailable():
        found = registered_masters(settings, store or _open(settings))
    return [master.to_record() for master in found]


@raised_as_unavailable()
def schedule_rows(settings: JobdConfig, store: Store | None = None) -> list[dict[str, Any]]:
    """Every entry with trigger, last fire, last outcome and next ticks (master or store)."""
    from ..ticker import Ticker

    store = store or _open(settings)
    try:
        rows: list[dict[str, Any]] = client.call(settings.socket, "schedules")
    except MasterNotRunning:
        store.initialise()
        rows = Ticker(store, load_schedule(settings)).describe()
    return with_last_outcomes(rows, store.jobs.states_of)


def _open(settings: JobdConfig) -> Store:
    """The store of ``settings``, on SQLAlchemy: a command that reads the status with no master loads it anyway."""
    from ..store import open_store

    return open_store(settings.store)
