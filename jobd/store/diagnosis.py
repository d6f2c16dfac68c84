"""What a store error means for the person who hit it, in one line."""

from __future__ import annotations


def missing_tables(reason: str) -> bool:
    """Whether the driver's message says the jobd tables do not exist (SQLite and MySQL wording)."""
    return "no such table" in reason or "doesn't exist" in reason


def describe_store_error(error: BaseException) -> str:
    """The driver's own words, plus what to do when the store has no jobd tables yet."""
    original = getattr(error, "orig", None) or error
    reason = str(original).strip() or type(original).__name__
    if missing_tables(reason):
        return f"the store has no jobd tables ({reason}): run `jobd init` first"
    return f"the store failed: {reason}"
