"""Bulk submit: many intents of one task in one call, checked as a whole, written in a few statements.

``submit_many`` is ``submit`` for a campaign's 500,000 contacts: every item
is checked before anything is written (a bad one names its index, and
nothing is inserted), the rows go in as multi-row INSERTs in one
transaction (``jobd.store.bulk_insert``), and the master is woken once. The
ids come back in the items' order. Unique keys work as for ``submit``: an
item whose key an unfinished job (or an earlier item) already holds is not
written, and is reported among the result's duplicates.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import defaults
from .errors import InvalidArgs
from .job import encode_args
from .run_at import epoch_seconds
from .submit_options import check_unique_key

if TYPE_CHECKING:
    import sqlalchemy as sa

    from .config import JobdConfig
    from .store.bulk_sql import Inserted


@dataclass(frozen=True)
class Duplicate:
    """An item not written because an unfinished job already holds its unique key."""

    index: int  # the item's position in the list given to ``submit_many``
    unique_key: str
    job_id: int  # the job holding the key: one already in the store, or an earlier item's


@dataclass(frozen=True)
class BulkResult:
    """What ``submit_many`` did.

    ``ids``: one per item, in the items' order — the new job's id, or for a
    duplicate the id of the job holding its key (what ``submit`` returns
    for it). ``duplicates``: the items that were not written, and why.
    """

    ids: list[int]
    duplicates: list[Duplicate]

    @property
    def submitted(self) -> int:
        """How many new jobs were written."""
        return len(self.ids) - len(self.duplicates)

    @property
    def new_ids(self) -> list[int]:
        """The ids of the jobs this call wrote, in the items' order."""
        skipped = {duplicate.index for duplicate in self.duplicates}
        return [job_id for index, job_id in enumerate(self.ids) if index not in skipped]


def submit_many(
    daemon: str,
    task: str,
    items: Iterable[dict[str, Any]],
    *,
    priority: int = 0,
    run_at: dt.datetime | float | None = None,
    unique_keys: Sequence[str | None] | None = None,
    max_attempts: int | None = None,
    connection: sa.Connection | None = None,
    config: JobdConfig | str | os.PathLike[str] | None = None,
) -> BulkResult:
    """Submit one job of ``task`` on ``daemon`` per args dict in ``items``; all of them or none.

    ``priority``, ``run_at`` and ``max_attempts`` apply to every job, as in
    ``submit``. ``unique_keys``: one key (or None) per item. ``connection``
    (a SQLAlchemy Connection in an open transaction on the store's
    database): the jobs are inserted in the caller's transaction and exist
    if and only if it commits; the master is then not woken (it finds them
    at its next poll). Raises ``InvalidArgs`` naming the first bad item's
    index, before anything is written.
    """
    arguments = list(items)
    due = epoch_seconds(run_at)
    if connection is None:
        from .api import driver_submitter_for

        submitter = driver_submitter_for(config)
        if submitter is not None:
            written = submitter.submit_many(
                daemon, task, arguments, priority=priority, run_at=due, unique_keys=unique_keys, max_attempts=max_attempts,
            )
            if written is not None:
                return bulk_result(*written)
    from .intents import submit_many_fully

    return bulk_result(*submit_many_fully(
        daemon, task, arguments, priority=priority, run_at=due, unique_keys=unique_keys, max_attempts=max_attempts,
        connection=connection, config=config,
    ))


def bulk_result(inserted: Inserted, keys: Sequence[str | None] | None) -> BulkResult:
    """What ``submit_many`` answers for what was inserted with these (checked) unique keys."""
    ids: list[int] = []
    duplicates: list[Duplicate] = []
    for index, job_id in enumerate(inserted.ids):
        if job_id is None:
            earlier = inserted.repeated.get(index)
            holder = inserted.held_by[index] if earlier is None else ids[earlier]
            key = keys[index] if keys is not None else None
            assert key is not None
            duplicates.append(Duplicate(index, key, holder))
            job_id = holder
        ids.append(job_id)
    return BulkResult(ids, duplicates)


def check_items(validate: Callable[[Any], object], task: str, items: list[Any]) -> list[str]:
    """Each item's args as stored; ``InvalidArgs`` naming the first bad item's index.

    Each item is judged by ``validate`` as a lone submit's args would be
    (``intents.validate_intent``, or the catalogue's check through the
    driver). What it judges is the arg names against the task's signature,
    so items with the same names share one verdict (a campaign's 500,000
    items usually have one set of names).
    """
    accepted: set[frozenset[str]] = set()
    encoded: list[str] = []
    for index, args in enumerate(items):
        try:
            if type(args) is not dict or frozenset(args) not in accepted:
                validate(args)
                accepted.add(frozenset(args))
            text = encode_args(args)
        except InvalidArgs as error:
            raise InvalidArgs(f"item {index}: {error}") from None
        if len(text) * 4 > defaults.MAX_ARGS_BYTES and len(text.encode()) > defaults.MAX_ARGS_BYTES:
            raise InvalidArgs(f"item {index}: args of {task!r} exceed {defaults.MAX_ARGS_BYTES} bytes")
        encoded.append(text)
    return encoded


def check_unique_keys(keys: Sequence[str | None] | None, count: int) -> list[str | None] | None:
    """The items' unique keys, checked: one per item, each a non-empty string of bounded length, or None."""
    if keys is None:
        return None
    if isinstance(keys, (str, bytes)):
        raise InvalidArgs("unique_keys must be a list with one key (or None) per item, not a single string")
    checked = list(keys)
    if len(checked) != count:
        raise InvalidArgs(f"unique_keys has {len(checked)} entries for {count} items: give one key (or None) per item")
    for index, key in enumerate(checked):
        try:
            check_unique_key(key)
        except InvalidArgs as error:
            raise InvalidArgs(f"item {index}: {error}") from None
    return checked if any(key is not None for key in checked) else None
