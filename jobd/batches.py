"""Batches for applications and tasks: a named group of jobs with callbacks when it is done.

::

    with jobd.batch("campaign-42", on_complete=("reports", "campaign.done", {"campaign": 42}),
                    on_failure=("reports", "campaign.alert", {"campaign": 42})) as batch:
        for chunk in chunks:
            batch.submit("mailing", "mailing.send_chunk", {"chunk": chunk})

The batch is sealed when the block ends: from then on only its own running
members may add to it (``ctx.batch.submit(...)`` in a task: a fan-out).
``on_complete`` is queued once, in the transaction that writes the last
member's ending; ``on_failure`` once, with the first member that dies. Each
callback's args get a ``batch`` key: ``{"id", "name", "total", "succeeded",
"dead", "cancelled"}``. A block that raises cancels the batch (its waiting
members are cancelled, no callback runs), unless it runs in the caller's
own transaction (``connection=``), which the caller rolls back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from . import defaults
from .intents import store_for, resolve_config, validate_intent
from .batch_record import Batch, BatchState, Callback
from .config import JobdConfig
from .errors import InvalidArgs
from .store import NewJob, Store
from .handoff.submit_side import announce

CallbackSpec = Callback | tuple[str, str] | tuple[str, str, dict[str, Any]]
_SAMPLE = {"id": 1, "name": "batch", "total": 1, "succeeded": 1, "dead": 0, "cancelled": 0}


class BatchHandle:
    """A batch members are added to: from the block that made it, or from a running member (``ctx.batch``)."""

    def __init__(self, batch_id: int, name: str, config: JobdConfig, *, connection: sa.Connection | None = None,
                 member: int | None = None) -> None:
        self.id = batch_id
        self.name = name
        self._config = config
        self._connection = connection
        self._member = member  # the running member adding to its own batch, if that is who holds this handle

    def submit(self, daemon: str, task: str, args: dict[str, Any] | None = None, **options: Any) -> int:
        """Add one member; its id. ``options``: ``priority``, ``run_at`` (epoch seconds), ``max_attempts``."""
        return self.submit_many(daemon, task, [args if args is not None else {}], **options)[0]

    def submit_many(self, daemon: str, task: str, args_list: Iterable[dict[str, Any]], *, priority: int = 0,
                    run_at: float | None = None, max_attempts: int | None = None) -> list[int]:
        """Add many members of one task in one transaction; their ids, in order.

        All are checked before any is written: one bad ``args`` refuses them all.
        """
        jobs = [
            NewJob(daemon=daemon, task=task, args=validate_intent(self._config, daemon, task, args), priority=priority,
                   run_at=run_at, max_attempts=max_attempts)
            for args in args_list
        ]
        if not jobs:
            return []
        ids = self._store.batches.add_members(self.id, jobs, by_member=self._member, connection=self._connection)
        if self._connection is None:
            announce(self._config.socket, daemon)  # the master claims at once instead of at its next poll
        return ids

    def progress(self) -> Batch:
        """The batch as the store has it now (counts, state)."""
        return self._store.batches.get(self.id)

    @property
    def _store(self) -> Store:
        return store_for(self._config.store)


@contextmanager
def batch(
    name: str, *, on_complete: CallbackSpec | None = None, on_failure: CallbackSpec | None = None,
    connection: sa.Connection | None = None, config: JobdConfig | str | os.PathLike[str] | None = None,
) -> Iterator[BatchHandle]:
    """Make a batch, let the block add its members, then seal it (see the module's docstring)."""
    settings = resolve_config(config)
    _check_name(name)
    callbacks = [_callback(settings, spec, key) for spec, key in ((on_complete, "on_complete"), (on_failure, "on_failure"))]
    store = store_for(settings.store)
    batch_id = store.batches.create(name, on_complete=callbacks[0], on_failure=callbacks[1], connection=connection)
    handle = BatchHandle(batch_id, name, settings, connection=connection)
    try:
        yield handle
    except BaseException:
        if connection is None:
            store.batches.cancel(batch_id)
        raise
    store.batches.seal(batch_id, connection=connection)
    if connection is None and callbacks[0] is not None:
        announce(settings.socket, callbacks[0].daemon)  # a batch whose members all ended already queued its callback


def member_batch(config: JobdConfig | str | os.PathLike[str], batch_id: int, job_id: int) -> BatchHandle:
    """The handle behind a running member's ``ctx.batch``: it adds to its own batch, sealed or not."""
    return BatchHandle(batch_id, "", resolve_config(config), member=job_id)


def get_batch(batch_id: int, *, config: JobdConfig | str | os.PathLike[str] | None = None) -> Batch:
    return store_for(resolve_config(config).store).batches.get(batch_id)


def cancel_batch(batch_id: int, *, config: JobdConfig | str | os.PathLike[str] | None = None) -> Batch:
    """Cancel a batch: its waiting members are cancelled, running ones asked to stop; no callback runs."""
    return store_for(resolve_config(config).store).batches.cancel(batch_id)


def list_batches(*, states: Sequence[BatchState] = (), limit: int = 50, config: JobdConfig | str | os.PathLike[str] | None = None) -> list[Batch]:
    return store_for(resolve_config(config).store).batches.list(states=states, limit=limit)


def batch_report(batch_id: int, *, config: JobdConfig | str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """``jobd batch ID``: the batch's counters, and its members by state now (waiting and running too)."""
    store = store_for(resolve_config(config).store)
    return {**store.batches.get(batch_id).to_dict(), "members": store.batches.member_states(batch_id)}


def wait_for_batch(batch_id: int, *, timeout: float, config: JobdConfig | str | os.PathLike[str] | None = None) -> Batch:
    """Poll until the batch is no longer open (or ``timeout`` passes); the batch as it was last read."""
    deadline = time.monotonic() + timeout
    while True:
        found = get_batch(batch_id, config=config)
        if found.state is not BatchState.OPEN or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name.strip() or len(name) > defaults.MAX_NAME_LENGTH:
        raise InvalidArgs(f"a batch needs a name of 1 to {defaults.MAX_NAME_LENGTH} characters, not {name!r}")


def _callback(config: JobdConfig, spec: CallbackSpec | None, key: str) -> Callback | None:
    """A callback checked like a submit, with the ``batch`` argument it will be given."""
    if spec is None:
        return None
    if isinstance(spec, Callback):
        callback = spec
    elif isinstance(spec, tuple) and len(spec) in (2, 3) and all(isinstance(part, str) for part in spec[:2]):
        args = spec[2] if len(spec) == 3 else {}
        if not isinstance(args, dict):
            raise InvalidArgs(f"{key}: args must be a JSON object such as {{\"campaign\": 42}}, not {args!r}")
        callback = Callback(spec[0], spec[1], dict(args))
    else:
        raise InvalidArgs(f"{key} must be (daemon, task) or (daemon, task, args), not {spec!r}")
    if "batch" in callback.args:
        raise InvalidArgs(f"{key}: the args may not hold a 'batch' key: the callback gets the batch's counts under it")
    try:
        validate_intent(config, callback.daemon, callback.task, {**callback.args, "batch": _SAMPLE})
    except InvalidArgs as error:
        raise InvalidArgs(f"{key}: {error} (a callback task takes a `batch` argument with the counts)") from None
    NewJob(callback.daemon, callback.task, {**callback.args, "batch": _SAMPLE}).row(time.time())  # JSON, within the size cap
    return callback
