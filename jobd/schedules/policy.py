"""Which ticks become jobs: misfire and overlap decisions, and the tick's fire key.

Pure functions of an entry, the last decided instant and ``now``. The master
calls ``plan_ticks`` every loop, inserts one job per tick in ``fire`` keyed
by ``fire_key`` (a unique index makes a second insert — another master, a
restart — fail instead of firing twice), and persists ``cursor`` as the
entry's last fire time *in the same transaction*, so a crash between the two
can neither lose nor repeat a tick.

Misfire policies, for the ticks due in ``(last_fire, now]``:

* ``skip`` — fire none of the missed ticks. A tick is *missed* when it is
  more than ``misfire_grace`` old (default 5 s); every due tick younger than
  that is on time and fires. The grace must exceed the master's loop period
  with margin (0.1–1 s loops, plus a GC pause or a slow store round trip):
  then on-time ticking never loses a tick, even of a per-second schedule.
* ``run_once`` — fire one job for all missed ticks: the latest one.
* ``catch_up`` — fire one job per missed tick, but only the most recent
  ``max_catch_up``. The most recent rather than the oldest: after a long
  outage the fresh ticks matter, and ``run_once`` is the ``max_catch_up =
  1`` case of the same rule.

A brand-new entry (``last_fire is None``) fires nothing from the past: its
history starts now. A disabled (paused) entry fires nothing and its cursor
moves on, so resuming never replays the pause.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from jobd.schedules.entry import MisfirePolicy, OverlapPolicy, ScheduleEntry
from jobd.schedules.triggers import fire_times_between, next_fire_time, previous_fire_time

UTC = timezone.utc
#: Fire keys go into a MySQL unique index (utf8mb4, 767-byte prefix limit → 190 chars).
FIRE_KEY_MAX_LENGTH = 190
_ENTRY_HASH_LENGTH = 16
_MICROSECOND = timedelta(microseconds=1)

OverlapDecision = Literal["fire", "skip", "replace"]


@dataclass(frozen=True)
class TickPlan:
    """What to do for one entry at one ``now``.

    ``fire``: the ticks to turn into jobs, oldest first (UTC).
    ``skipped``: the first and last due tick the policy dropped, for a log
    line ("skipped ticks from … to …"), or ``None`` if none was dropped.
    ``cursor``: persist it as the entry's last fire time and pass it back
    as ``last_fire`` next time; every tick at or before it is decided.
    """

    fire: tuple[datetime, ...]
    skipped: tuple[datetime, datetime] | None
    cursor: datetime


def plan_ticks(entry: ScheduleEntry, last_fire: datetime | None, now: datetime) -> TickPlan:
    """Decide the ticks due in ``(last_fire, now]`` under the entry's misfire policy."""
    now = _utc(now, "now")
    if last_fire is None or not entry.enabled:
        return TickPlan(fire=(), skipped=None, cursor=now)
    last_fire = _utc(last_fire, "last_fire")
    if now <= last_fire:  # the clock stepped back: never re-decide a tick
        return TickPlan(fire=(), skipped=None, cursor=last_fire)
    first_due = next_fire_time(entry, last_fire)
    if first_due is None or first_due > now:
        return TickPlan(fire=(), skipped=None, cursor=now)

    if entry.misfire is MisfirePolicy.SKIP:
        # every tick at most misfire_grace old is on time; ticks lie >= 1 s apart
        window_start = max(last_fire, now - entry.misfire_grace - _MICROSECOND)
        fire = fire_times_between(entry, window_start, now, limit=int(entry.misfire_grace.total_seconds()) + 2)
    else:
        wanted = entry.max_catch_up if entry.misfire is MisfirePolicy.CATCH_UP else 1
        due = fire_times_between(entry, last_fire, now, limit=wanted + 1)
        fire = due if len(due) <= wanted else _latest_ticks(entry, last_fire, now, wanted)
    return TickPlan(fire=tuple(fire), skipped=_skipped(entry, first_due, fire, last_fire, now), cursor=now)


def ticks_to_fire(entry: ScheduleEntry, last_fire: datetime | None, now: datetime) -> list[datetime]:
    """The ticks to turn into jobs now (``plan_ticks(...).fire``)."""
    return list(plan_ticks(entry, last_fire, now).fire)


def overlap_decision(entry: ScheduleEntry, previous_job_active: bool) -> OverlapDecision:
    """Whether a due tick fires while the entry's previous job may still run.

    ``"replace"`` means: cancel the running job, then fire. A tick skipped
    here is still decided (its cursor moves on): it is not retried later.
    """
    if not previous_job_active or entry.overlap is OverlapPolicy.ALLOW:
        return "fire"
    if entry.overlap is OverlapPolicy.REPLACE:
        return "replace"
    return "skip"


def fire_key(entry_id: str, fire_time_utc: datetime) -> str:
    """The tick's unique key: ``nightly-report@2026-11-21T03:00:00Z``, at most 190 chars.

    Stable across hosts and restarts (the tick is the un-jittered UTC fire
    time). An entry name too long for the limit is cut and followed by a
    hash of the whole name, so distinct names keep distinct keys.
    """
    moment = _utc(fire_time_utc, "fire_time_utc")
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        stamp += f".{moment.microsecond:06d}"
    suffix = f"@{stamp}Z"
    room = FIRE_KEY_MAX_LENGTH - len(suffix)
    if len(entry_id) > room:
        digest = hashlib.sha256(entry_id.encode("utf-8")).hexdigest()[:_ENTRY_HASH_LENGTH]
        entry_id = f"{entry_id[: room - _ENTRY_HASH_LENGTH - 1]}~{digest}"
    return entry_id + suffix


def _latest_ticks(entry: ScheduleEntry, after: datetime, until: datetime, count: int) -> list[datetime]:
    """The ``count`` latest ticks in ``(after, until]``, oldest first (searching backward)."""
    ticks: list[datetime] = []
    bound = until
    while len(ticks) < count:
        tick = previous_fire_time(entry, bound, after=after)
        if tick is None:
            break
        ticks.append(tick)
        bound = tick - _MICROSECOND
    return ticks[::-1]


def _skipped(
    entry: ScheduleEntry, first_due: datetime, fire: list[datetime], last_fire: datetime, now: datetime
) -> tuple[datetime, datetime] | None:
    """The first and last due tick left out of ``fire`` (they are all older than ``fire``)."""
    if fire and fire[0] == first_due:
        return None
    last_dropped = previous_fire_time(entry, fire[0] - _MICROSECOND if fire else now, after=last_fire)
    assert last_dropped is not None  # first_due itself was dropped
    return (first_due, last_dropped)


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(UTC)
