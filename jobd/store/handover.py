"""What ``jobd start`` tells its master about the store, so the master never loads SQLAlchemy.

Working out the driver's connection arguments from a store URL is
SQLAlchemy's job (``engine.driver_target``), and ``jobd start`` has it loaded
anyway to create the schema. It writes the arguments, with the URL as
operators may see it (no password), in a file only the master reads (an
anonymous file, never the command line: the password is among the
arguments). The master opens its store on them (``store_core.open_driver_store``)
and hands the workers the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .driver_sql import DriverTarget, target_as_json, target_from_json


@dataclass(frozen=True)
class StoreHandover:
    """How the master reaches its store."""

    target: DriverTarget  # as a worker connects (``driver_sql.for_master``: as the master does)
    url: str  # without its password

    def encode(self) -> str:
        return json.dumps({"target": target_as_json(self.target), "url": self.url})


def handover_for(url: str) -> StoreHandover:
    """The handover for the store at ``url`` (loads SQLAlchemy; ``StoreUnavailable`` for a URL it refuses)."""
    from .engine import driver_target, shown_url

    return StoreHandover(driver_target(url), shown_url(url))


def decode_handover(text: str) -> StoreHandover:
    """The handover ``StoreHandover.encode`` wrote; ``ValueError`` naming what is wrong otherwise."""
    try:
        data = json.loads(text)
        return StoreHandover(target_from_json(data["target"]), str(data["url"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"the store handed to the master is unreadable: {error}") from None
