"""The full submit: an intent checked with the config's models and written by the store's SQLAlchemy code.

``jobd.submit`` (``jobd.api``) goes through the database driver alone when
it can (``jobd.ops.quick_submit``); it comes here for what only this path
does — a caller's transaction (``connection=``), a unique key, a cached
result to reuse, a daemon whose catalogue was never published (its task
code is imported and checked here) — and to report what the driver path
leaves to it (an unknown daemon, a store not initialised or refusing the
row). ``jobd.submit_many`` and ``jobd.batch`` check their intents here too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from .activity.results import find_cached, unique_key_for
from .bulk import check_items, check_unique_keys
from .catalogue import read_published
from .catalogue_check import CatalogueCache, check_intent, require_object
from .config import JobdConfig, find_config_path, load_config
from .config_path import config_lookup
from .errors import StoreUnavailable, UnknownTask
from .handoff.submit_side import announce, hand_off, offer_for
from .inventory import load_daemon_tasks
from .job import encode_args
from .store import NewJob, Store, open_store
from .store.bulk_sql import BulkJobs, Inserted
from .store.diagnosis import describe_store_error, missing_tables
from .store.errors import StoreFault, describe, is_outage
from .tasks import TaskDefinition
from .workers.protocol import HandedJob

log = logging.getLogger("jobd.api")


@lru_cache(maxsize=8)
def _config_at(path: str) -> JobdConfig:
    return load_config(path)


@lru_cache(maxsize=8)
def store_for(url: str) -> Store:
    return open_store(url)


@lru_cache(maxsize=64)
def _tasks_of(path: str, daemon: str) -> dict[str, TaskDefinition]:
    return load_daemon_tasks(_config_at(path), daemon)


@lru_cache(maxsize=8)
def _config_found(explicit: str | None, from_env: str | None, cwd: str) -> JobdConfig:
    return _config_at(str(find_config_path(explicit)))


_task_sources: set[str] = set()  # config files whose tasks _tasks_of holds: no need to look for them again


def resolve_config(config: JobdConfig | str | os.PathLike[str] | None) -> JobdConfig:
    if isinstance(config, JobdConfig):
        return config
    return _config_found(*config_lookup(config))


def validate_intent(config: JobdConfig, daemon: str, task: str, args: Any) -> dict[str, Any]:
    """Check an intent against the config and the daemon's published task catalogue; return the args.

    The catalogue (``jobd.catalogue``) holds the task names and argument
    signatures the master, or `jobd check`, last published for ``daemon``:
    nothing of the task code is imported here. This process holds it and
    reads it again when it is older than a few seconds or refuses an intent,
    so a task a reloaded master just started serving is accepted at once.
    When no catalogue was published for the daemon yet (no master has
    started on this store, and `jobd check` has not run since `jobd init`),
    the daemon's task code is imported in this process and checked instead,
    refusing with the same errors. That the args are JSON is checked when
    the job's row is made (``NewJob.row``).
    """
    config.daemon(daemon)  # UnknownDaemon naming the known ones
    require_object(args)
    if not check_intent(_catalogue_for(config.store), daemon, task, args):
        _check_by_importing(config, daemon, task, args)
    return args


@lru_cache(maxsize=8)
def _catalogue_for(url: str) -> CatalogueCache:
    store = store_for(url)
    return CatalogueCache(lambda: read_published(store))


def _check_by_importing(config: JobdConfig, daemon: str, task: str, args: dict[str, Any]) -> None:
    """The check before any catalogue was published: the task's own code, imported in this process."""
    source = str(config.source)
    if source in _task_sources or config.source.exists():
        _task_sources.add(source)
        tasks = _tasks_of(source, daemon)
    else:
        tasks = load_daemon_tasks(config, daemon)
    definition = tasks.get(task)
    if definition is None:
        known = ", ".join(sorted(tasks)) or "none"
        raise UnknownTask(f"daemon {daemon!r} has no task {task!r} (its tasks: {known})")
    definition.check_args(args)


def submit_fully(
    daemon: str, task: str, args: dict[str, Any], *, run_at: float | None, priority: int, unique_key: str | None,
    max_attempts: int | None, connection: sa.Connection | None, config: JobdConfig | str | os.PathLike[str] | None,
    reuse_cached: bool,
) -> int:
    """``jobd.submit`` with the config's models and the store's SQLAlchemy code (``jobd.api.submit`` says
    what each option does): the job id."""
    settings = resolve_config(config)
    arguments = validate_intent(settings, daemon, task, args)
    if reuse_cached:
        encode_args(arguments)  # InvalidArgs before they are made into a cache key
        cached = find_cached(settings, task, arguments)
        if cached is not None and isinstance(cached.get("job_id"), int):
            return int(cached["job_id"])
        unique_key = unique_key or unique_key_for(task, arguments)
    store = store_for(settings.store)
    offer = None
    if settings.handoff and connection is None and unique_key is None and (run_at is None or run_at <= time.time()):
        offer = offer_for(settings.socket, daemon)  # the local master takes the job straight (jobd.handoff)
    handed_to = offer.master if offer is not None else None
    new_job = NewJob(
        daemon=daemon, task=task, args=arguments, priority=priority, run_at=run_at,
        unique_key=unique_key, max_attempts=max_attempts, handed_to=handed_to,
    )
    try:
        job_id = store.jobs.insert(new_job, connection=connection)
    except sa.exc.DBAPIError as error:
        if missing_tables(str(error.orig)):
            raise StoreUnavailable(describe_store_error(error)) from None
        if connection is not None or not is_outage(error):
            raise  # the caller's own transaction, or a statement the store refused: the caller's to handle
        raise StoreUnavailable(
            f"the job was not submitted: the store at {store.url} is unavailable ({describe(error)}); try again later"
        ) from None
    if offer is not None:
        hand_off(
            settings.socket, offer, HandedJob(daemon, job_id, priority, max_attempts, task, new_job.encoded_args),
            lambda job_id, master: store.jobs.requeue([job_id], master, refund_attempt=True), (StoreFault,),
        )
    elif connection is None:
        announce(settings.socket, daemon, priority)  # the master claims at once instead of at its next poll
    return job_id


def submit_many_fully(
    daemon: str, task: str, items: list[Any], *, priority: int, run_at: float | None, unique_keys: Sequence[str | None] | None,
    max_attempts: int | None, connection: sa.Connection | None, config: JobdConfig | str | os.PathLike[str] | None,
) -> tuple[Inserted, list[str | None] | None]:
    """``jobd.submit_many`` with the config's models and the store's SQLAlchemy code (``jobd.bulk.submit_many`` says
    what each option does): what was inserted, and the checked unique keys."""
    settings = resolve_config(config)
    encoded = check_items(lambda args: validate_intent(settings, daemon, task, args), task, items)
    keys = check_unique_keys(unique_keys, len(items))
    if not items:
        return Inserted([], {}, {}), keys
    store = store_for(settings.store)
    bulk = BulkJobs(daemon, task, encoded, keys, priority=priority, run_at=run_at, max_attempts=max_attempts)
    try:
        inserted = store.bulk_jobs.insert(bulk, time.time(), connection=connection)
    except sa.exc.DBAPIError as error:
        if missing_tables(str(error.orig)):
            raise StoreUnavailable(describe_store_error(error)) from None
        if connection is not None or not is_outage(error):
            raise
        raise StoreUnavailable(
            f"no job was submitted: the store at {store.url} is unavailable ({describe(error)}); try again later"
        ) from None
    if connection is None:
        announce(settings.socket, daemon, priority)  # once for the whole bulk: the master claims them in its own batches
    return inserted, keys
