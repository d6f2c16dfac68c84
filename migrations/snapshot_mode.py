"""What a tenant's snapshot copies: its own module so the CLI can offer the choices without the settings models."""

from __future__ import annotations

from enum import Enum


class SnapshotMode(str, Enum):
    """What a tenant's snapshot copies before its first pending step."""

    TOUCHED = "touched"  # the tables the pending steps name (the whole schema if unsure)
    SCHEMA = "schema"  # every base table of the tenant database
    NONE = "none"  # nothing: a failure cannot be undone (explicit opt-out)
