"""jobd — a background job daemon supervisor that replaces cron.

For task code::

    import jobd

    @jobd.task("mailing.send_campaign")
    def send_campaign(ctx, campaign_id: int) -> dict: ...

For applications::

    job_id = jobd.submit("mailing", "mailing.send_campaign", {"campaign_id": 42})
    result = jobd.submit_many("mailing", "mailing.send_one", [{"contact_id": n} for n in contacts])
    with jobd.batch("campaign-42", on_complete=("reports", "campaign.done", {})) as batch:
        batch.submit("mailing", "mailing.send_chunk", {"chunk": 1})
"""

from __future__ import annotations

from typing import Any

from .tasks import task

__version__ = "0.1.0"
__all__ = ["task", "submit", "submit_many", "get_job", "batch", "get_batch", "cancel_batch", "__version__"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: task modules that only need @jobd.task stay light
    # to import, and an application loads only the API it calls.
    if name in {"submit", "get_job"}:
        from . import api

        value = getattr(api, name)
        globals()[name] = value  # found directly from now on: an app submits all day
        return value
    if name in {"submit_many", "BulkResult"}:
        from . import bulk

        value = getattr(bulk, name)
        globals()[name] = value
        return value
    if name in {"batch", "get_batch", "cancel_batch"}:
        from . import batches

        value = getattr(batches, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jobd' has no attribute {name!r}")
