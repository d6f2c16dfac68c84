"""The durable store: the source of truth for jobs and masters.

``open_store(url)`` gives a ``Store`` over SQLite (embedded default) or
MySQL/MariaDB through PyMySQL. The same operations, and the same test
suite, hold for both. A master opens a ``StoreCore`` instead
(``open_driver_store``): the tables it writes, through the driver alone.

The names below are loaded on first use: a worker that only needs the
driver-level statements of ``driver_sql``, and a master, import this
package without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bulk_sql import BulkJobs
    from .jobs import NewJob
    from .masters import MasterRecord
    from .opening import Store, open_store
    from .schema import SCHEMA_VERSION
    from .store_core import StoreCore, open_driver_store

__all__ = ["Store", "open_store", "StoreCore", "open_driver_store", "NewJob", "BulkJobs", "MasterRecord", "SCHEMA_VERSION"]

_HOME = {
    "Store": "opening", "open_store": "opening", "StoreCore": "store_core", "open_driver_store": "store_core",
    "NewJob": "jobs", "BulkJobs": "bulk_sql", "MasterRecord": "masters", "SCHEMA_VERSION": "schema",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'jobd.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
