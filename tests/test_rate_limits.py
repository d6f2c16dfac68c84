"""Token buckets on a manual clock: what a claim may take, what it spends, when the next job may go."""

from __future__ import annotations

import pytest

from jobd.concurrency_caps import Budget
from jobd.rate_limits import DAEMON_KEY, Bucket, Rate, RateLimits, default_burst, parse_rate
from jobd.token_waits import TokenWaits


@pytest.mark.parametrize("text, per_second", [("50/s", 50.0), ("300/m", 5.0), ("1800/h", 0.5), (" 2.5 / s ", 2.5)])
def test_a_rate_is_a_count_per_second_minute_or_hour(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("value", ["50", "50/d", "/s", "-1/s", "0/s", "fast", 50, None, "1e9999/s"])
def test_anything_else_is_refused_naming_the_value(value: object) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(value)


def test_the_default_burst_is_one_seconds_worth_and_at_least_one() -> None:
    assert default_burst(50.0) == 50.0
    assert default_burst(2.5) == 2.0
    assert default_burst(5 / 60) == 1.0


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    rate = Rate(per_second=10.0, burst=5.0)
    empty = Bucket(tokens=0.0, updated_at=100.0)
    assert empty.refilled(rate, 100.25).tokens == pytest.approx(2.5)
    assert empty.refilled(rate, 100.25).available == 2
    assert empty.refilled(rate, 160.0).tokens == 5.0


def test_a_clock_behind_the_bucket_adds_nothing_and_never_moves_it_back() -> None:
    rate = Rate(per_second=10.0, burst=5.0)
    bucket = Bucket(tokens=1.0, updated_at=100.0).refilled(rate, 99.0)
    assert bucket == Bucket(tokens=1.0, updated_at=100.0)


def test_spending_more_than_the_whole_tokens_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot spend 2"):
        Bucket(tokens=1.9, updated_at=0.0).spent(2)


def test_the_next_token_comes_when_the_fraction_left_has_grown_to_one() -> None:
    rate = Rate(per_second=4.0, burst=4.0)
    assert Bucket(tokens=0.5, updated_at=10.0).next_token_at(rate) == pytest.approx(10.125)
    assert Bucket(tokens=1.0, updated_at=10.0).next_token_at(rate) == 10.0


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


def test_over_a_simulated_minute_a_claimer_polling_at_each_next_token_keeps_the_rate() -> None:
    """A claimer that wakes when told takes one second's worth each second; only the first adds the full bucket."""
    rate = Rate(per_second=50.0, burst=50.0)
    limits = RateLimits(daemon=rate)
    bucket, now, started = Bucket.full(rate, 0.0), 0.0, []
    while now < 60.0:
        bucket = bucket.refilled(rate, now)
        take = bucket.available
        bucket = limits.spend({DAEMON_KEY: bucket}, ["t"] * take)[DAEMON_KEY]
        started += [now] * take
        next_at = limits.next_token_at({DAEMON_KEY: bucket}, ["t"])
        assert next_at is not None and next_at > now
        now = next_at + 0.0005  # the claimer is a little late each time
    per_second = [sum(1 for t in started if second <= t < second + 1) for second in range(60)]
    assert per_second[0] == 50 + 49  # the full bucket, then the rate
    assert per_second[1:] == [50] * 59  # lateness is made up from the tokens that kept coming


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
