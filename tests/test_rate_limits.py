"""Rate limits on a manual clock: what a claim may take (tokens, room in the second), what it spends, when the next job may go."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from jobd.concurrency_caps import Budget
from jobd.rate_limits import CLOSING_MARGIN, DAEMON_KEY, Bucket, Rate, RateLimits, default_burst, parse_rate
from jobd.token_waits import TokenWaits


@pytest.mark.parametrize("text, per_second", [("50/s", 50.0), ("300/m", 5.0), ("1800/h", 0.5), (" 2.5 / s ", 2.5)])
def test_a_rate_is_a_count_per_second_minute_or_hour(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("value", ["50", "50/d", "/s", "-1/s", "0/s", "fast", 50, None, "1e9999/s"])
def test_anything_else_is_refused_naming_the_value(value: object) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(value)


def test_the_default_burst_is_one_seconds_worth_rounded_up_and_at_least_one() -> None:
    assert default_burst(50.0) == 50.0
    assert default_burst(2.5) == 3.0
    assert default_burst(5 / 60) == 1.0


@pytest.mark.parametrize("per_second, burst", [(20.0, 5.0), (2.5, 2.0), (1.0, 0.5)])
def test_a_burst_below_one_seconds_worth_is_refused_as_it_would_cap_the_rate(per_second: float, burst: float) -> None:
    with pytest.raises(ValueError, match="burst"):
        Rate(per_second, burst)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    rate = Rate(per_second=10.0, burst=15.0)
    empty = Bucket(tokens=0.0, updated_at=100.0)
    assert empty.refilled(rate, 100.25).tokens == pytest.approx(2.5)
    assert empty.refilled(rate, 100.25).available(rate) == 2
    assert empty.refilled(rate, 160.0).tokens == 15.0


def test_a_clock_behind_the_bucket_adds_nothing_and_never_moves_it_back() -> None:
    rate = Rate(per_second=10.0, burst=10.0)
    bucket = Bucket(tokens=1.0, updated_at=100.5, second=100, started=9).refilled(rate, 99.0)
    assert (bucket.tokens, bucket.updated_at, bucket.started_this_second) == (1.0, 100.5, 9)


def test_spending_more_than_the_whole_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot start 2"):
        Bucket(tokens=1.9, updated_at=0.0).spent(Rate(5.0, 5.0), 2)


def test_a_second_lets_at_most_the_burst_start_though_the_bucket_refills_meanwhile() -> None:
    rate = Rate(per_second=10.0, burst=10.0)
    bucket = Bucket.full(rate, 100.0).spent(rate, 10)
    later = bucket.refilled(rate, 100.5)
    assert later.tokens == pytest.approx(5.0) and later.available(rate) == 0
    assert later.next_start_at(rate) == 101.0
    next_second = later.refilled(rate, 101.0)
    assert next_second.available(rate) == 10 and next_second.started_this_second == 0


def test_no_job_is_taken_in_the_closing_margin_of_a_second() -> None:
    """A job starts a little after its claim: one claimed at the very end of a second could start in the next."""
    rate = Rate(per_second=10.0, burst=10.0)
    bucket = Bucket.full(rate, 100.0).refilled(rate, 101.0 - CLOSING_MARGIN / 2)
    assert bucket.tokens == 10.0 and bucket.available(rate) == 0
    assert bucket.next_start_at(rate) == 101.0
    assert Bucket.full(rate, 100.0).refilled(rate, 101.0 - CLOSING_MARGIN * 2).available(rate) == 10


def test_the_next_start_comes_when_the_fraction_left_has_grown_to_one() -> None:
    rate = Rate(per_second=4.0, burst=4.0)
    assert Bucket(tokens=0.5, updated_at=10.0).next_start_at(rate) == pytest.approx(10.125)
    assert Bucket(tokens=1.0, updated_at=10.0).next_start_at(rate) == 10.0
    assert Bucket(tokens=0.1, updated_at=10.75).next_start_at(rate) == 11.0  # 10.975 is in the closing margin


def test_a_claim_takes_at_most_the_whole_tokens_of_the_daemon_and_of_each_task() -> None:
    limits = RateLimits(daemon=Rate(10.0, 10.0), tasks={"mail.send": Rate(2.0, 2.0)})
    buckets = {DAEMON_KEY: Bucket(3.7, 0.0), "mail.send": Bucket(1.2, 0.0)}
    budget = limits.narrow(Budget(total=100), buckets)
    assert budget.total == 3 and budget.per_task == {"mail.send": 1}
    chosen = budget.choose([(1, "mail.send"), (2, "mail.send"), (3, "report"), (4, "report"), (5, "report")])
    assert chosen == [1, 3, 4]


def test_rates_narrow_a_concurrency_budget_and_never_widen_it() -> None:
    limits = RateLimits(tasks={"sync.crm": Rate(50.0, 50.0)})
    budget = limits.narrow(Budget(total=2, per_task={"sync.crm": 1}), {"sync.crm": Bucket(50.0, 0.0)})
    assert budget == Budget(total=2, per_task={"sync.crm": 1})


def test_spending_takes_one_token_per_job_from_the_daemon_and_from_its_task() -> None:
    limits = RateLimits(daemon=Rate(10.0, 10.0), tasks={"mail.send": Rate(2.0, 2.0)})
    buckets = {DAEMON_KEY: Bucket(3.7, 5.0), "mail.send": Bucket(1.2, 5.0)}
    spent = limits.spend(buckets, ["mail.send", "report", "report"])
    assert spent[DAEMON_KEY].tokens == pytest.approx(0.7) and spent["mail.send"].tokens == pytest.approx(0.2)


def test_jobs_left_waiting_go_when_the_last_empty_bucket_they_count_against_has_a_token() -> None:
    limits = RateLimits(daemon=Rate(10.0, 10.0), tasks={"mail.send": Rate(2.0, 2.0)})
    spent = {DAEMON_KEY: Bucket(0.5, 100.0), "mail.send": Bucket(0.0, 100.0)}
    assert limits.next_token_at(spent, ["report"]) == pytest.approx(100.05)
    assert limits.next_token_at(spent, ["mail.send"]) == pytest.approx(100.5)
    assert limits.next_token_at(spent, ["mail.send", "report"]) == pytest.approx(100.05)
    assert limits.next_token_at(spent, []) is None


def test_jobs_left_by_a_full_claim_do_not_wait_for_a_token() -> None:
    limits = RateLimits(daemon=Rate(10.0, 10.0))
    assert limits.next_token_at({DAEMON_KEY: Bucket(4.0, 100.0)}, ["report"]) is None


def claimer(rate: Rate, start: float, until: float, next_claim: Callable[[float, float | None], float], most: int = 10**9) -> list[float]:
    """The start times of one key's jobs under a backlog: claims at the times ``next_claim(now, next start)`` picks, each taking at most ``most``."""
    limits = RateLimits(daemon=rate)
    buckets, now, started = {DAEMON_KEY: Bucket.full(rate, 0.0)}, start, []
    while now < until:
        buckets = {DAEMON_KEY: buckets[DAEMON_KEY].refilled(rate, now)}
        take = limits.narrow(Budget(total=most), buckets).total
        buckets = limits.spend(buckets, ["t"] * take)
        started += [now] * take
        now = next_claim(now, limits.next_token_at(buckets, ["t"]))
    return started


def per_calendar_second(times: list[float], seconds: int, lag: float = 0.0) -> list[int]:
    return [sum(1 for at in times if second <= at + lag < second + 1) for second in range(seconds)]


RATE = Rate(per_second=50.0, burst=50.0)


@pytest.mark.parametrize("arrives", [0.0, 0.3, 0.94])
def test_a_backlog_after_a_quiet_spell_starts_no_more_than_the_burst_in_its_first_second(arrives: float) -> None:
    """A full bucket and the second's refill: only the burst of it starts in that second, the rest waits for the next."""
    started = claimer(RATE, arrives, 60.0, lambda now, due: due if due is not None else now + 0.001)
    counts = per_calendar_second(started, 60)
    assert max(counts) == 50
    assert counts[1:] == [50] * 59


def test_a_claimer_polling_a_little_late_at_each_next_start_keeps_the_rate_over_a_minute() -> None:
    started = claimer(RATE, 0.3, 60.0, lambda now, due: (due if due is not None else now) + 0.0005)
    counts = per_calendar_second(started, 60)
    assert max(counts) <= 50
    assert sum(counts[1:]) / 59 >= 0.95 * 50


def test_claims_held_up_never_push_a_second_above_the_burst() -> None:
    """A stalled store or master: the tokens that accrued meanwhile never add to the next second's burst."""
    chance = random.Random(18)

    def held_up(now: float, due: float | None) -> float:
        next_at = due if due is not None else now + 0.005
        return next_at + (chance.uniform(0.2, 1.5) if chance.random() < 0.05 else 0.0)

    started = claimer(RATE, 0.5, 120.0, held_up, most=2)
    assert max(per_calendar_second(started, 120)) <= 50


def test_starts_that_lag_their_claim_by_less_than_the_closing_margin_stay_in_the_claims_second() -> None:
    """Small claims every few ms, as free workers ask: each job starts up to the margin after its claim."""
    started = claimer(RATE, 0.2, 60.0, lambda now, due: max(now + 0.004, due or 0.0), most=2)
    lag = CLOSING_MARGIN * 0.99
    assert max(per_calendar_second(started, 61, lag)) <= 50
    assert sum(per_calendar_second(started, 60)[1:]) / 59 >= 0.95 * 50


def test_the_master_wakes_for_the_soonest_token_and_forgets_a_daemon_once_it_claimed() -> None:
    waits = TokenWaits()
    assert waits.seconds_until_next(100.0) is None
    waits.note("mailing", 100.5)
    waits.note("sms", 100.2)
    assert waits.seconds_until_next(100.0) == pytest.approx(0.2)
    assert waits.take_due(100.1) == []
    assert waits.take_due(100.3) == ["sms"]
    assert waits.seconds_until_next(100.3) == pytest.approx(0.2)
    waits.note("mailing", None)  # its claim took the last waiting job
    assert waits.seconds_until_next(100.3) is None and waits.take_due(200.0) == []
    waits.note("sms", 99.0)
    assert waits.seconds_until_next(100.0) == 0.0
