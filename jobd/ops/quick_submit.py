"""`jobd trigger DAEMON TASK` through the database driver alone, when nothing about it needs more.

The full submit (``jobd.api.submit``) validates the config's models, loads
SQLAlchemy, reads the task catalogue, inserts the job and wakes the master:
most of the command's time goes on loading what one SELECT and one INSERT do
not need. Here the config's validated settings come from its digest
(``jobd.config_digest``: the store's driver arguments among them), the
daemon's catalogue row and the INSERT go through the driver
(``store.driver_submit``), and the same checks refuse the same intents with
the same words: an unknown task or bad args (``catalogue_check``), args that
are not JSON or too large (``NewJob.row``). The job is committed before its
id is returned, then the master is woken as by the full submit. When the
local master offers to take the daemon's jobs straight (``jobd.handoff``),
the job is inserted claimed for it and handed to one of its idle workers,
as the full submit does: the same row, the same datagram, and the same way
back to the queue if nobody takes it.

``submit_quickly`` returns None, having written nothing, whenever the full
submit has more to do or more to say, and the caller then takes it:

* a daemon the config does not name (``UnknownDaemon``, named by the full path);
* no catalogue published for the daemon (the full path imports its task
  code), or a row that is not a catalogue;
* a store not reached, not initialised (a SQLite file that does not exist
  is never created here), or an INSERT refused (nothing written: the full
  path tries again and reports what the store says);
* options the full submit alone handles (``--unique-key``, ``--reuse-cached``)
  are never brought here (``cli.trigger_command``).

One case cannot be handed over: a MySQL connection lost during the INSERT
may have committed it, so trying again could submit the job twice. That is
reported as the full submit reports it (``StoreUnavailable``, "the job was
not submitted", as likely true there as here).
"""

from __future__ import annotations

import time
from typing import Any

from ..catalogue_check import decode
from ..config_digest import ConfigDigest
from ..errors import StoreUnavailable
from ..handoff.submit_side import announce, hand_off, offer_for
from ..store.driver_sql import DriverTarget, existing_target
from ..store.new_job import NewJob
from ..workers.protocol import HandedJob


def submit_quickly(
    digest: ConfigDigest, daemon: str, task: str, args: dict[str, Any], *, run_at: float | None = None, priority: int = 0,
) -> int | None:
    """The id of the committed job; None when the full submit must run instead (nothing was written).

    ``digest`` is the config's (``config_digest``). ``UnknownTask`` and
    ``InvalidArgs`` as from ``jobd.api.submit``.
    """
    if daemon not in digest.daemons or not isinstance(args, dict):
        return None
    offer = offer_for(digest.socket, daemon) if digest.handoff and (run_at is None or run_at <= time.time()) else None
    target = existing_target(digest.driver)
    if target is None:
        return None
    from ..store.driver_submit import SubmitStatements

    store = SubmitStatements(target)
    try:
        try:
            row = store.catalogue_row(daemon)
        except store.driver.Error as error:
            if _out_of_reach(error):  # the full submit would wait as long again, and fail the same way
                raise _not_submitted(digest.store, error) from None
            return None  # no catalogue table (an older schema): the full submit says what is wrong
        if row is None:
            return None
        try:
            catalogue = decode(row)
        except (ValueError, TypeError, AttributeError):
            return None  # the full submit warns and checks by importing the task code
        catalogue.check(task, args)
        new_job = NewJob(
            daemon=daemon, task=task, args=args, priority=priority, run_at=run_at,
            handed_to=offer.master if offer is not None else None,
        )
        values = new_job.row(time.time())
        try:
            job_id = store.insert(values)
        except store.driver.Error as error:
            if not _maybe_committed(target, error):
                return None
            raise _not_submitted(digest.store, error) from None
        if offer is not None:
            handed = HandedJob(daemon, job_id, priority, None, task, new_job.encoded_args)
            hand_off(digest.socket, offer, handed, store.requeue_handed, (store.driver.Error,))
        else:
            announce(digest.socket, daemon, priority)  # the master claims it now (past its prefetch if it is urgent)
    finally:
        store.close()
    return job_id


def _maybe_committed(target: DriverTarget, error: BaseException) -> bool:
    """Whether a failed INSERT may have been committed all the same (a MySQL connection lost mid-way).

    A SQLite statement that fails wrote nothing, and neither did a MySQL
    statement the server refused (its data, its table).
    """
    if target.dialect == "sqlite":
        return False
    from ..store.errors import is_outage

    return is_outage(error)


def _out_of_reach(error: BaseException) -> bool:
    """Whether the store could not be reached (a read timeout, a refused connection), not a missing table."""
    from ..store.errors import is_outage

    return is_outage(error) and "no such table" not in str(error)


def _not_submitted(url: str, error: BaseException) -> StoreUnavailable:
    """The full submit's words for a store that failed the INSERT (``jobd.api.submit``)."""
    import sqlalchemy as sa

    from ..store.errors import describe

    shown = sa.make_url(url).render_as_string(hide_password=True)
    return StoreUnavailable(f"the job was not submitted: the store at {shown} is unavailable ({describe(error)}); try again later")
