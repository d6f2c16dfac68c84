"""The chaos soak's verdicts (bench/chaos_analysis.py), on hand-made inputs.

The soak itself runs in CI after the suite (scripts/test-all.sh); these
tests make sure what it counts — overlapping runs, ticks fired twice or
missed, recovery after a cut — is counted right, so a green soak means
something and a red one is not a false alarm.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import chaos_analysis as analysis  # noqa: E402
import chaos_tasks  # noqa: E402

T0 = 1_796_000_000.0  # a whole second


def log_line(kind: str, job: int, attempt: int, pid: int, token: str, at: float, master: str = "m0.1") -> str:
    return f"{kind} {job} {attempt} {pid} {master} {token} {at:.6f}"


def key(second: float, entry: str = "chaos-tick") -> str:
    return entry + "@" + datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the execution log and overlaps ------------------------------------------------


def test_a_run_is_assembled_from_its_start_beats_and_end_lines() -> None:
    runs, malformed = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("B", 7, 1, 100, "a", T0 + 0.1),
        log_line("E", 7, 1, 100, "a", T0 + 0.2), "garbage", log_line("B", 8, 1, 101, "orphan-beat", T0),
    ])
    assert [(run.job_id, run.start, run.end, run.outcome) for run in runs] == [(7, T0, T0 + 0.2, "ended")]
    assert malformed == 2  # the garbage line, and a beat whose run never started


def test_a_killed_run_ends_at_its_last_beat() -> None:
    runs, _ = analysis.parse_execution_log([log_line("S", 7, 1, 100, "a", T0), log_line("B", 7, 1, 100, "a", T0 + 0.3)])
    assert runs[0].outcome == "open" and runs[0].end == T0 + 0.3


def test_two_runs_of_one_job_in_two_processes_at_the_same_time_overlap() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("E", 7, 1, 100, "a", T0 + 1.0),
        log_line("S", 7, 2, 200, "b", T0 + 0.5, master="m1.1"), log_line("E", 7, 2, 200, "b", T0 + 1.5, master="m1.1"),
    ])
    (pair,) = analysis.overlapping_runs(runs)
    assert {pair[0].pid, pair[1].pid} == {100, 200}


def test_a_killed_run_still_overlaps_a_run_started_before_its_last_beat() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("B", 7, 1, 100, "a", T0 + 0.4),  # then SIGKILL
        log_line("S", 7, 2, 200, "b", T0 + 0.3), log_line("E", 7, 2, 200, "b", T0 + 0.6),
    ])
    assert len(analysis.overlapping_runs(runs)) == 1


def test_a_retry_after_the_first_run_ended_is_not_an_overlap() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("B", 7, 1, 100, "a", T0 + 0.2),  # killed after its beat
        log_line("S", 7, 2, 200, "b", T0 + 0.2), log_line("E", 7, 2, 200, "b", T0 + 0.5),  # starts as it ended
        log_line("S", 7, 3, 300, "c", T0 + 0.9), log_line("E", 7, 3, 300, "c", T0 + 1.0),
    ])
    assert analysis.overlapping_runs(runs) == []


def test_runs_of_different_jobs_at_the_same_time_do_not_overlap() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("E", 7, 1, 100, "a", T0 + 1.0),
        log_line("S", 8, 1, 200, "b", T0 + 0.5), log_line("E", 8, 1, 200, "b", T0 + 1.5),
    ])
    assert analysis.overlapping_runs(runs) == []


def test_a_long_run_overlaps_every_run_started_inside_it_and_a_run_known_by_its_start_alone() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0), log_line("E", 7, 1, 100, "a", T0 + 10.0),
        log_line("S", 7, 2, 200, "b", T0 + 1.0),  # killed at once: no beat, no end
        log_line("S", 7, 3, 300, "c", T0 + 5.0), log_line("E", 7, 3, 300, "c", T0 + 6.0),
        log_line("S", 7, 4, 400, "d", T0 + 10.0), log_line("E", 7, 4, 400, "d", T0 + 11.0),  # starts as the first ends
    ])
    assert [(first.pid, second.pid) for first, second in analysis.overlapping_runs(runs)] == [(100, 200), (100, 300)]


def test_the_soak_tasks_write_lines_the_parser_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "execution.log"
    monkeypatch.setenv(chaos_tasks.LOG_ENV, str(log))
    monkeypatch.setenv(chaos_tasks.MASTER_ENV, "m2.5")
    chaos_tasks.work(SimpleNamespace(job_id=41, attempt=3), seconds=0.25)
    with pytest.raises(ValueError):
        chaos_tasks.poison(SimpleNamespace(job_id=42, attempt=1))
    runs, malformed = analysis.parse_execution_log(log.read_text().splitlines())
    assert malformed == 0
    work, poison = runs
    assert (work.job_id, work.attempt, work.master, work.outcome) == (41, 3, "m2.5", "ended")
    assert 0.25 <= work.end - work.start < 1.0
    assert (poison.job_id, poison.outcome) == (42, "raised")


def test_an_attempt_started_after_a_later_attempt_had_started_is_superseded() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 2, 200, "b", T0), log_line("E", 7, 2, 200, "b", T0 + 0.3),
        log_line("S", 7, 1, 100, "a", T0 + 0.1), log_line("E", 7, 1, 100, "a", T0 + 0.4),  # stale: attempt 2 had begun
        log_line("S", 8, 1, 300, "c", T0), log_line("B", 8, 1, 300, "c", T0 + 0.1),
        log_line("S", 8, 2, 301, "d", T0 + 0.5), log_line("E", 8, 2, 301, "d", T0 + 0.9),  # a normal retry
    ])
    assert [(run.job_id, run.attempt) for run in analysis.superseded_runs(runs)] == [(7, 1)]


def test_a_run_that_logs_after_its_master_was_killed_outlived_it() -> None:
    runs, _ = analysis.parse_execution_log([
        log_line("S", 7, 1, 100, "a", T0, master="m0.1"), log_line("E", 7, 1, 100, "a", T0 + 3.0, master="m0.1"),
        log_line("S", 8, 1, 101, "b", T0, master="m0.1"), log_line("E", 8, 1, 101, "b", T0 + 0.5, master="m0.1"),
        log_line("S", 9, 1, 200, "c", T0, master="m1.1"), log_line("E", 9, 1, 200, "c", T0 + 3.0, master="m1.1"),
    ])
    (outlived,) = analysis.runs_outliving_their_master(runs, {"m0.1": T0 + 1.0})
    assert outlived[0].job_id == 7 and outlived[1] == 2.0


# -- schedule ticks ----------------------------------------------------------------------


def test_fire_keys_are_read_back_as_epoch_seconds() -> None:
    assert analysis.fire_key_second(key(T0), "chaos-tick") == int(T0)
    assert analysis.fire_key_second("chaos-tick@2026-12-04T10:00:00.250000Z", "chaos-tick") is not None
    assert analysis.fire_key_second(key(T0, "other"), "chaos-tick") is None
    assert analysis.fire_key_second("chaos-tick@yesterday", "chaos-tick") is None


def test_every_second_fired_once_is_clean() -> None:
    report = analysis.check_ticks([key(T0 + n) for n in range(10)], "chaos-tick", (T0, T0 + 9))
    assert (report.expected, report.fired, report.doubles, report.missed) == (10, 10, [], [])


def test_a_tick_fired_twice_is_a_double_even_with_a_second_spelling_of_its_key() -> None:
    keys = [key(T0 + n) for n in range(5)] + [key(T0 + 2), "chaos-tick@" + key(T0 + 3).split("@")[1][:-1] + ".000500Z"]
    report = analysis.check_ticks(keys, "chaos-tick", (T0, T0 + 4))
    assert report.doubles == [int(T0) + 2, int(T0) + 3]


def test_a_missing_second_is_missed_and_other_entries_are_ignored() -> None:
    keys = [key(T0 + n) for n in range(10) if n != 4] + [key(T0 + 4, "other")]
    report = analysis.check_ticks(keys, "chaos-tick", (T0 - 0.5, T0 + 9.5))
    assert report.missed == [int(T0) + 4] and report.expected == 10 and report.foreign == 1


def test_catch_up_must_fire_every_tick_of_a_short_outage() -> None:
    keys = [key(T0 + n) for n in range(20) if not 5 <= n <= 8]
    report = analysis.check_ticks(keys, "chaos-tick", (T0, T0 + 19), policy="catch_up", max_catch_up=1000,
                                  outages=[(T0 + 5, T0 + 8.5)])
    assert report.missed == [int(T0) + n for n in range(5, 9)] and report.excused == []


def test_catch_up_may_drop_ticks_older_than_max_catch_up_before_the_outage_ended() -> None:
    keys = [key(T0 + n) for n in range(30) if not 5 <= n <= 22]  # 20..22 fired late: only the latest 3
    keys += [key(T0 + n) for n in (20, 21, 22)]
    report = analysis.check_ticks(keys, "chaos-tick", (T0, T0 + 29), policy="catch_up", max_catch_up=3,
                                  outages=[(T0 + 6, T0 + 22.5)])
    assert report.missed == [] and report.excused == [int(T0) + n for n in range(5, 20)]


def test_skip_may_drop_the_ticks_of_an_outage_but_not_others() -> None:
    keys = [key(T0 + n) for n in range(30) if not 8 <= n <= 15 and n != 25]
    report = analysis.check_ticks(keys, "chaos-tick", (T0, T0 + 29), policy="skip", grace=2,
                                  outages=[(T0 + 10, T0 + 15)])
    assert report.excused == [int(T0) + n for n in range(8, 16)] and report.missed == [int(T0) + 25]


# -- recovery after a cut --------------------------------------------------------------------


def test_recovery_counts_the_first_start_of_a_job_created_after_the_cut() -> None:
    cuts = [(T0, T0 + 5), (T0 + 20, T0 + 25)]
    starts = [
        (T0 + 5.5, T0 - 1),  # prefetched before the cut: does not prove the store is back
        (T0 + 6.0, T0 + 5.2),  # created after the first cut: 1.0 s
        (T0 + 30.0, T0 + 26.0),  # after the second: 5.0 s
    ]
    assert analysis.recovery_times(cuts, starts, T0 + 60) == [1.0, 5.0]


def test_no_recovery_before_the_next_cut_is_reported_as_none() -> None:
    cuts = [(T0, T0 + 5), (T0 + 10, T0 + 12)]
    assert analysis.recovery_times(cuts, [(T0 + 11, T0 + 6), (T0 + 13, T0 + 12.5)], T0 + 60) == [None, 1.0]


def test_the_soak_refuses_a_duration_outside_60_to_300_seconds() -> None:
    finished = subprocess.run([sys.executable, str(BENCH / "chaos.py"), "--duration", "20"],
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == 2 and "between 60 and 300" in finished.stderr
