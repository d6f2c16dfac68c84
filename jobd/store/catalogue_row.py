"""One daemon's row of the task catalogue, as read from the store by SQLAlchemy or by the driver alone."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogueRow:
    daemon: str
    version: str
    tasks: str  # JSON, decoded by jobd.catalogue_check
    published_at: float
