"""The rate-limit keys of a ``[daemons.NAME]`` table, validated as the file is read.

``rate_limit = "50/s"`` (also ``/m``, ``/h``) limits how many of the
daemon's jobs start per unit of time over all hosts, ``rate_burst`` how
many may start in any one second (default: one second's worth rounded up,
at least one; never less, or the rate could not be reached);
``task_rate_limits`` and ``task_rate_bursts`` do the same per task. The
arithmetic is ``jobd.rate_limits``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from .config_checks import After, AtLeast
from .rate_limits import Rate, RateLimits, burst_problem, default_burst, parse_rate

if TYPE_CHECKING:
    from pydantic import ValidationInfo

UNLIMITED = RateLimits()


def _rate_is_readable(value: str | None) -> str | None:
    if value is not None:
        parse_rate(value)
    return value


def _task_rates_are_readable(rates: dict[str, str]) -> dict[str, str]:
    for task, value in rates.items():
        try:
            parse_rate(value)
        except ValueError as error:
            raise ValueError(f"task {task!r}: {error}") from None
    return rates


def _burst_has_a_rate(burst: int | None, info: ValidationInfo) -> int | None:
    if burst is None or "rate_limit" not in info.data:  # absent: rate_limit was refused already
        return burst
    if info.data["rate_limit"] is None:
        raise ValueError("rate_burst needs a rate_limit")
    problem = burst_problem(parse_rate(info.data["rate_limit"]), burst)
    if problem is not None:
        raise ValueError(f"{problem} ({info.data['rate_limit']!r})")
    return burst


def _task_bursts_have_rates(bursts: dict[str, int], info: ValidationInfo) -> dict[str, int]:
    for task, burst in bursts.items():
        if burst < 1:
            raise ValueError(f"task {task!r}: a burst must be at least 1 (got {burst})")
    if "task_rate_limits" in info.data:  # absent: that key was refused already
        rates = info.data["task_rate_limits"]
        unlimited = sorted(set(bursts) - set(rates))
        if unlimited:
            raise ValueError(f"{', '.join(map(repr, unlimited))} has no rate in task_rate_limits")
        for task, burst in bursts.items():
            problem = burst_problem(parse_rate(rates[task]), burst)
            if problem is not None:
                raise ValueError(f"task {task!r}: {problem} ({rates[task]!r})")
    return bursts


@dataclass(frozen=True)
class RateLimitSettings:
    """A base of ``DaemonConfig``: the keys and their checks, kept out of the config module."""

    # most jobs of this daemon started per second/minute/hour across all hosts, e.g. "50/s"
    rate_limit: Annotated[str | None, After(_rate_is_readable)] = None
    # most of its jobs started in any one second (default: one second's worth, at least 1)
    rate_burst: Annotated[Annotated[int, AtLeast(1)] | None, After(_burst_has_a_rate)] = None
    # task name → its rate limit, e.g. { "mail.send" = "5/s" }
    task_rate_limits: Annotated[dict[str, str], After(_task_rates_are_readable)] = field(default_factory=dict)
    # task name → its burst, as rate_burst (default: one second's worth, at least 1)
    task_rate_bursts: Annotated[dict[str, int], After(_task_bursts_have_rates)] = field(default_factory=dict)

    def rate_limits(self) -> RateLimits:
        """The limits as values for the claim (``jobd.rate_limits``); asked at every dispatch."""
        if self.rate_limit is None and not self.task_rate_limits:
            return UNLIMITED
        daemon = None
        if self.rate_limit is not None:
            daemon = _rate(self.rate_limit, self.rate_burst)
        tasks = {task: _rate(value, self.task_rate_bursts.get(task)) for task, value in self.task_rate_limits.items()}
        return RateLimits(daemon, tasks)


def _rate(text: str, burst: int | None) -> Rate:
    per_second = parse_rate(text)
    return Rate(per_second, float(burst) if burst is not None else default_burst(per_second))
