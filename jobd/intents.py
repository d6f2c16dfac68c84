"""The application-facing API: submit an intent, look at a job.

``submit`` writes the job durably and returns its id; it works whether or not
a master is running (the job waits in the store). Given ``connection=``, the
job is inserted inside the caller's own transaction, so it exists if and only
if the caller's transaction commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import defaults
from .activity.results import find_cached, unique_key_for
from .catalogue import CatalogueCache, read_published
from .config import JobdConfig, find_config_path, load_config
from .control.protocol import Request
from .errors import InvalidArgs, StoreUnavailable, UnknownTask
from .handoff.submit_side import announce, hand_off, offer_for
from .inventory import load_daemon_tasks
from .job import Job, encode_args
from .store import NewJob, Store, open_store
from .store.diagnosis import describe_store_error, missing_tables
from .store.errors import describe, is_outage
from .tasks import TaskDefinition
from .workers.protocol import HandedJob

log = logging.getLogger("jobd.api")


@lru_cache(maxsize=8)
def _config_at(path: str) -> JobdConfig:
    return load_config(path)


@lru_cache(maxsize=8)
def _store_for(url: str) -> Store:
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
    # Resolving the path asks the file system about every folder on it; an
    # application submitting all day asks for the same config every time.
    explicit = os.fspath(config) if config else None
    if explicit is not None and os.path.isabs(explicit):
        return _config_found(explicit, None, "")  # neither the environment nor the working folder matters
    return _config_found(explicit, os.environ.get(defaults.CONFIG_ENV_VAR), os.getcwd())


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
    if not isinstance(args, dict):
        raise InvalidArgs("args must be a JSON object such as {\"campaign_id\": 42}")
    catalogues = _catalogue_for(config.store)
    published = catalogues.get(daemon)
    if published is None:
        _check_by_importing(config, daemon, task, args)
        return args
    try:
        published.check(task, args)
    except (UnknownTask, InvalidArgs):
        fresh = catalogues.get(daemon, fresh=True)  # published since we read it? A refusal is worth a look
        if fresh is None or fresh.version == published.version:
            raise
        fresh.check(task, args)
    return args


@lru_cache(maxsize=8)
def _catalogue_for(url: str) -> CatalogueCache:
    store = _store_for(url)
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


def submit(
    daemon: str,
    task: str,
    args: dict[str, Any] | None = None,
    *,
    run_at: dt.datetime | float | None = None,
    priority: int = 0,
    unique_key: str | None = None,
    max_attempts: int | None = None,
    connection: sa.Connection | None = None,
    config: JobdConfig | str | os.PathLike[str] | None = None,
    reuse_cached: bool = False,
) -> int:
    """Submit an intent: a job for ``task`` on ``daemon`` with JSON ``args``. Returns the job id.

    ``run_at`` delays the job (an aware datetime or epoch seconds).
    ``unique_key`` makes the submit idempotent while a job with that key is
    unfinished: the existing job's id is returned. ``connection`` (a
    SQLAlchemy Connection in an open transaction on the jobd store's
    database) enqueues as part of the caller's transaction.

    ``reuse_cached=True`` (for tasks declaring ``cache_ttl``): if a job of
    this task with equal args succeeded within its ``cache_ttl``, nothing
    runs and the id of *that* job is returned (its result:
    ``get_job(id).result``); an equal request still waiting or running is
    joined instead of started twice (its id is returned). See
    ``jobd.activity.results``.
    """
    settings = resolve_config(config)
    arguments = validate_intent(settings, daemon, task, args if args is not None else {})
    if reuse_cached:
        encode_args(arguments)  # InvalidArgs before they are made into a cache key
        cached = find_cached(settings, task, arguments)
        if cached is not None and isinstance(cached.get("job_id"), int):
            return int(cached["job_id"])
        unique_key = unique_key or unique_key_for(task, arguments)
    if isinstance(run_at, dt.datetime):
        if run_at.tzinfo is None:
            raise InvalidArgs("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        run_at = run_at.timestamp()
    store = _store_for(settings.store)
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
            lambda job_id, master: store.jobs.requeue([job_id], master, refund_attempt=True), (sa.exc.DBAPIError,),
        )
    elif connection is None:
        announce(settings.socket, daemon, priority)  # the master claims at once instead of at its next poll
    return job_id


def get_job(job_id: int, *, config: JobdConfig | str | os.PathLike[str] | None = None) -> Job:
    return _store_for(resolve_config(config).store).jobs.get(job_id)


def wake_master(socket_path: Path) -> None:
    """Ask a local master to look at the store now: waiting jobs of every daemon and cancel requests.

    A request over the control socket, answered by the master loop (``jobd
    cancel`` needs that: the running job is stopped on the master's side).
    A plain submit only needs ``jobd.handoff.submit_side.announce``, which is much cheaper.
    Fire-and-forget: no master, or a busy one, costs nothing but the poll delay.
    """
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(0.2)
    try:
        client.connect(str(socket_path))
        client.sendall(Request("wake").encode())
    except OSError:
        pass
    finally:
        client.close()
