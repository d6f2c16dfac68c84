"""A submit's priority, run_at and max_attempts: what each takes, checked before a row is made."""

from __future__ import annotations

import math

import pytest

from jobd.errors import InvalidArgs
from jobd.store.bulk_sql import BulkJobs
from jobd.store.new_job import NewJob
from jobd.submit_options import check_max_attempts, check_priority, check_run_at, check_unique_key


@pytest.mark.parametrize("priority", [0, -5, 2**31 - 1, -(2**31)])
def test_a_priority_is_a_whole_number_the_jobs_table_holds(priority: int) -> None:
    check_priority(priority)


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 1.5, True, "high", None])
def test_any_other_priority_is_refused_naming_what_it_takes(priority: object) -> None:
    with pytest.raises(InvalidArgs, match=r"priority must be a whole number from -2147483648 to 2147483647, not "):
        check_priority(priority)


@pytest.mark.parametrize("max_attempts", [None, 1, 1000])
def test_max_attempts_is_the_daemons_own_or_a_count_a_daemon_could_have(max_attempts: int | None) -> None:
    check_max_attempts(max_attempts)


@pytest.mark.parametrize("max_attempts", [0, -1, 1001, 2.0, False, "3"])
def test_any_other_max_attempts_is_refused(max_attempts: object) -> None:
    with pytest.raises(InvalidArgs, match=r"max_attempts must be a whole number from 1 to 1000 \(or None: the daemon's own\)"):
        check_max_attempts(max_attempts)


@pytest.mark.parametrize("run_at", [None, 0, -5.0, 1.8e9, 2**40])
def test_run_at_is_now_or_any_finite_epoch_time_one_in_the_past_being_due_now(run_at: float | None) -> None:
    check_run_at(run_at)


@pytest.mark.parametrize("run_at", [math.nan, math.inf, -math.inf, True, "tomorrow", [1]])
def test_any_other_run_at_is_refused(run_at: object) -> None:
    with pytest.raises(InvalidArgs, match=r"run_at must be a finite time \(epoch seconds, or an aware datetime\), not "):
        check_run_at(run_at)


def test_no_row_is_made_with_an_option_the_store_could_not_keep_as_meant() -> None:
    with pytest.raises(InvalidArgs, match="priority"):
        NewJob("main", "t.noop", {}, priority="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgs, match="run_at"):
        BulkJobs("main", "t.noop", ["{}"], run_at=math.nan)
    with pytest.raises(InvalidArgs, match="max_attempts"):
        BulkJobs("main", "t.noop", ["{}"], max_attempts=0)


@pytest.mark.parametrize("unique_key", [None, "k", "k" * 190])
def test_a_unique_key_is_none_or_a_string_the_unique_index_holds(unique_key: str | None) -> None:
    check_unique_key(unique_key)


@pytest.mark.parametrize("unique_key", ["", "k" * 191, 5, b"k"])
def test_any_other_unique_key_is_refused(unique_key: object) -> None:
    with pytest.raises(InvalidArgs, match=r"must be a non-empty string of at most 190 characters"):
        check_unique_key(unique_key)
