"""jobd — a background job daemon supervisor that replaces cron.

For task code::

    import jobd

    @jobd.task("mailing.send_campaign")
    def send_campaign(ctx, campaign_id: int) -> dict: ...

For applications::

    job_id = jobd.submit("mailing", "mailing.send_campaign", {"campaign_id": 42})
"""

from __future__ import annotations

from typing import Any

from .tasks import task

__version__ = "0.1.0"
__all__ = ["task", "submit", "get_job", "__version__"]


def __getattr__(name: str) -> Any:
    # The submit API pulls in SQLAlchemy; task modules that only need
    # @jobd.task stay light to import.
    if name in {"submit", "get_job"}:
        from . import api

        value = getattr(api, name)
        globals()[name] = value  # found directly from now on: an app submits all day
        return value
    raise AttributeError(f"module 'jobd' has no attribute {name!r}")
