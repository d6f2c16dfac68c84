"""``jobd status`` at the cost of one socket round trip when a master runs, and of a few reads when none does.

The local master composes the document on its own store (``status_report``:
``jobd.master.status_answer``) for the config this command would read,
named by its digest (``jobd.config_digest``); the command then validates no
models and loads no database code. When no master answers, the command
composes the document from the store through the database driver alone
(``quick_status``), with the settings the digest holds: the same
composition (``jobd.status.compose``) on the same statements
(``store.status_reads_sql``). Whenever that cannot give the whole answer —
a master that declines (another config, its store down, a document too
large) or fails, a store not reached or at another schema version — the
command composes the document in full
(``jobd.status.report.read_status``), and its errors are then the ones reported.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import defaults
from ..config_digest import ConfigDigest, config_digest
from ..errors import JobdError, MasterNotRunning, StoreUnavailable

if TYPE_CHECKING:
    from ..status.model import StatusReport
    from ..store.job_reads_sql import Rows

T = TypeVar("T")


def quick_status(config: str | os.PathLike[str] | None, *, live_activity: bool) -> dict[str, Any] | None:
    """The ``status --json`` document, composed by the local master or, with none running, through the driver;
    None when the command must compose it in full.

    ``live_activity``: with no master, also read every host's masters and running jobs from memcached (``--json``;
    a master's document always has them). ``ConfigError`` as from ``load_config`` for a file the full validation
    has not accepted.
    """
    from ..control import client

    digest = config_digest(config)
    try:
        answer = client.call(
            digest.socket, "status_report", {"settings": digest.settings}, timeout=defaults.JOBS_FROM_MASTER_TIMEOUT_SECONDS,
        )
    except MasterNotRunning:
        return _from_store(digest, live_activity=live_activity)
    except (JobdError, OSError):
        return None  # an older master (unknown operation), or one that failed: compose it here
    report = answer.get("report") if isinstance(answer, dict) else None
    return report if isinstance(report, dict) else None  # declined: another config, or too large


def _from_store(digest: ConfigDigest, *, live_activity: bool) -> dict[str, Any] | None:
    """The document with no master running, read through the driver; None when the full path must compose it."""
    from ..status.compose import recent_batches, report_from_store, with_live_activity, with_rate_waits
    from ..store.status_reads_sql import StatusReads

    settings = digest.status_facts()
    now = time.time()

    def compose(rows: Rows, dialect: str) -> StatusReport:
        reads = StatusReads(rows, dialect)
        report = with_rate_waits(report_from_store(settings, reads, now), settings, reads, now)
        return replace(report, batches=recent_batches(reads, now))

    report = _read_through_driver(digest, compose)
    if report is None:
        return None
    if live_activity:
        report = with_live_activity(report, settings, now)
    return report.to_json()


def daemon_status_from_store(config: str | os.PathLike[str] | None, daemon: str) -> dict[str, Any] | None:
    """`jobd status DAEMON` with no master running, read through the driver; None when the full path must answer
    (a daemon the config does not name, whose error it words; a store missing, at another version, or failing)."""
    from ..daemons.detail import FAILED_STATES, RECENT_FAILURES, queue_report, stopped_daemon_detail
    from ..daemons.plan import default_desired
    from ..store.job_reads_sql import JobFilter, JobReads
    from ..store.row_decoding import decode_row
    from ..store.status_reads_sql import StatusReads

    digest = config_digest(config)
    settings = digest.daemon_facts.get(daemon)
    if settings is None:
        return None

    def detail(rows: Rows, dialect: str) -> dict[str, Any]:
        status, jobs = StatusReads(rows, dialect), JobReads(rows, dialect)
        desired = status.desired_states().get(daemon) or default_desired(settings)
        counts = status.job_counts().get(daemon, {})
        failed = JobFilter(tuple(str(state) for state in FAILED_STATES), daemon, limit=RECENT_FAILURES)
        report = queue_report(jobs.queue_depth(daemon), [decode_row(row) for row in jobs.page(failed)], time.time())
        return stopped_daemon_detail(daemon, settings, desired, counts, report)

    return _read_through_driver(digest, detail)


def _read_through_driver(digest: ConfigDigest, read: Callable[[Rows, str], T]) -> T | None:
    """``read(rows, dialect)`` on one driver connection to the digest's store; None where the full path must answer
    instead: no driver arguments (a SQLite file that does not exist), a store not at this version, one that fails.
    """
    from ..store.driver_reads import driver_rows
    from ..store.driver_sql import existing_target
    from ..store.status_reads_sql import StatusReads

    target = existing_target(digest.driver)
    if target is None:
        return None
    try:
        with driver_rows(target) as rows:  # a driver error is StoreUnavailable here
            if StatusReads(rows, target.dialect).schema_version() != defaults.STORE_SCHEMA_VERSION:
                return None  # not initialised, or to be upgraded: the full path says so
            return read(rows, target.dialect)
    except StoreUnavailable:
        return None  # the full path reports the store's failure in its own words


def schedules_from_master(config: str | os.PathLike[str] | None) -> list[dict[str, Any]] | None:
    """`jobd schedules`' rows as the running master has them (its entries, their last outcomes); None when the
    command must read them itself: no master, an older one, or one whose store is down."""
    from ..control import client

    digest = config_digest(config)
    try:
        answer = client.call(digest.socket, "schedule_rows", {}, timeout=defaults.JOBS_FROM_MASTER_TIMEOUT_SECONDS)
    except (MasterNotRunning, JobdError, OSError):
        return None
    rows = answer.get("rows") if isinstance(answer, dict) else None
    return rows if isinstance(rows, list) else None
