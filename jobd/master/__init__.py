"""The master: one supervising process per host (``core.Master``), its concerns one module each."""

from ..states import JobState
from .core import Master, ReadyCallback
from .dispatch import default_prefetch
from .loop import REAP_INTERVAL_SECONDS

__all__ = ["Master", "JobState", "ReadyCallback", "REAP_INTERVAL_SECONDS", "default_prefetch"]
