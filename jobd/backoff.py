"""Retry and restart delays: exponential backoff with jitter, as pure functions."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base: float,
    maximum: float,
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    The delay doubles with each attempt (``base``, ``2·base``, ``4·base`` …),
    is capped at ``maximum``, and is spread by ``±jitter`` (a fraction) so
    that jobs failing together do not retry in lock-step.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    delay = min(maximum, base * (2 ** (attempt - 1)))
    if jitter:
        spread = (rng or random).uniform(-jitter, jitter)
        delay = max(0.0, delay * (1.0 + spread))
    return delay
