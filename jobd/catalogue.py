"""The task catalogue: which tasks each daemon serves and which args they take, published as data.

An application that submits jobs should not have to carry, import and run
the top level of every task module (with its dependencies and import-time
side effects) only to learn that ``mailing.send_campaign`` exists and takes
``campaign_id``. The master already learns that in a throwaway interpreter
(``jobd.inventory``); it publishes it to the store at start and on reload,
and so does ``jobd check``. A submit checks its intent against that
catalogue (``CatalogueCache``) and imports nothing.

Each daemon's entry carries a version: a digest of the daemon's config and
its tasks' code identity (module, function, source digest; a shell task's
spec). Publishing writes only entries whose version changed. A submitting
process holds what it read and reads again when it is older than
``CATALOGUE_MAX_AGE_SECONDS`` or when it refuses an intent, so a daemon's
new task or changed signature is seen at once and never costs a store
round trip per accepted submit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from .catalogue_check import CatalogueCache, DaemonCatalogue, decode
from .config import JobdConfig
from .config_checks import as_json_data
from .errors import JobdError, StoreUnavailable
from .inventory import Inventory
from .store.store_core import StoreCore
from .store.diagnosis import describe_store_error, missing_tables
from .store.errors import StoreFault, describe, is_outage, raised_as_unavailable
from .store.task_catalogue import CatalogueRow

__all__ = [  # CatalogueCache, DaemonCatalogue and decode live in ``catalogue_check``: a submit through the driver alone needs no SQLAlchemy
    "CatalogueCache", "DaemonCatalogue", "catalogue_rows", "decode", "publish_after_reload", "publish_catalogue",
    "publish_for_check", "read_published",
]

log = logging.getLogger("jobd.catalogue")


def catalogue_rows(config: JobdConfig, inventory: Inventory, now: float) -> list[CatalogueRow]:
    """Each daemon of ``inventory`` as a catalogue row, versioned with its config and task code."""
    rows = []
    for daemon, tasks in sorted(inventory.items()):
        served = {name: {"parameters": info.parameters} for name, info in sorted(tasks.items())}
        identity = {
            "config": as_json_data(config.daemons[daemon]) if daemon in config.daemons else None,
            "python_path": [str(path) for path in config.python_path],
            "code": {name: info.code for name, info in sorted(tasks.items())},
            "tasks": served,
        }
        version = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]
        rows.append(CatalogueRow(daemon, version, json.dumps({"tasks": served}, sort_keys=True), now))
    return rows


def publish_catalogue(store: StoreCore, config: JobdConfig, inventory: Inventory) -> list[str]:
    """Write the daemons' tasks to the store; returns the daemons whose entry changed.

    ``StoreUnavailable`` when the store fails, saying what was not done.
    """
    try:
        return store.task_catalogue.publish(catalogue_rows(config, inventory, time.time()))
    except StoreFault as error:
        raise StoreUnavailable(f"the task catalogue was not published to the store at {store.url}: {describe_store_error(error)}") from None


def publish_for_check(config: JobdConfig, inventory: Inventory) -> tuple[bool, str]:
    """`jobd check`'s publication: (published, what happened, in a few words).

    A store that is not there, not initialised, or at another schema leaves
    the check passing: a config is checked where its store may not be
    reachable (a CI job, a laptop). Submits then go on checking against the
    catalogue published before, or the task code.
    """
    if _sqlite_file_missing(config.store):
        return False, "not published: the store is not initialised (run `jobd init`)"
    from .store import open_store

    try:
        store = open_store(config.store)  # a TLS file the URL names may be missing here
    except StoreUnavailable as error:
        return False, f"not published: {error}"
    try:
        with raised_as_unavailable():
            store.require_schema()
            changed = publish_catalogue(store, config, inventory)
    except StoreUnavailable as error:
        return False, f"not published: {error}"
    finally:
        store.dispose()
    return True, f"published to {store.url} ({'updated: ' + ', '.join(changed) if changed else 'unchanged'})"


def _sqlite_file_missing(url: str) -> bool:
    """Whether ``url`` is a SQLite file that does not exist (opening it would create an empty one)."""
    import sqlalchemy as sa  # only `jobd check` asks, with SQLAlchemy loaded anyway

    parsed = sa.make_url(url)
    return parsed.get_backend_name() == "sqlite" and bool(parsed.database) and not Path(str(parsed.database)).exists()


def publish_after_reload(store: StoreCore, config: JobdConfig, inventory: Inventory) -> None:
    """Publish for a master that just applied a config; a store that fails only delays it (logged)."""
    try:
        changed = publish_catalogue(store, config, inventory)
    except JobdError as error:
        log.warning("%s; submits check against the one published before until the next reload or `jobd check`", error)
        return
    if changed:
        log.info("task catalogue published for %s", ", ".join(changed))


def read_published(store: StoreCore) -> list[CatalogueRow]:
    """Every published row; none when the store has no catalogue table yet (never initialised, or older than v5).

    ``StoreUnavailable`` when the store is out of reach, worded like a failed submit.
    """
    try:
        return store.task_catalogue.read()
    except StoreFault as error:
        if missing_tables(str(error.orig)):
            return []
        if is_outage(error):
            raise StoreUnavailable(
                f"the job was not submitted: the store at {store.url} is unavailable ({describe(error)}); try again later"
            ) from None
        raise
