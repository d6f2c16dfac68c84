"""The benchmarks still run: tiny versions of bench/peers.py and bench/footprint.py (jobd only), bench/cron.py, bench/priorities.py, bench/schedule_latency.py and others.

They need none of the bench extras (Celery, RQ, Huey, Dramatiq): peers whose
package is missing are skipped, jobd always runs. Numbers are not checked
here, only that each benchmark completes and prints its table.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(*args: str) -> str:
    finished = subprocess.run(
        [sys.executable, str(BENCH / args[0]), *args[1:]], capture_output=True, text=True, timeout=90,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    return finished.stdout


@pytest.mark.timeout(120)
def test_peer_benchmark_runs_jobd_on_sqlite_and_prints_its_row() -> None:
    output = run_bench("peers.py", "--quick", "--only", "jobd-sqlite", "--throughput-jobs", "300")
    row = next(line for line in output.splitlines() if line.startswith("| jobd-sqlite"))
    throughput = row.split("|")[2].strip()
    assert re.fullmatch(r"[\d,]+", throughput), row
    assert "versions: " in output and "jobd " in output


@pytest.mark.timeout(120)
def test_cron_benchmark_compares_a_fresh_interpreter_with_a_warm_worker() -> None:
    output = run_bench("cron.py", "--tiny", "--runs", "2", "--batch", "4")
    assert "| cron: fresh interpreter" in output
    assert "| jobd: warm worker" in output
    assert "cron ÷ jobd" in output


@pytest.mark.timeout(120)
def test_footprint_benchmark_measures_every_jobd_process_and_the_goals() -> None:
    output = run_bench("footprint.py", "--quick", "--only", "jobd-sqlite,jobd-sqlite+schedule", "--jobs", "200")
    for system in ("jobd-sqlite", "jobd-sqlite+schedule"):
        rows = {line.split("|")[2].strip(): line for line in output.splitlines() if line.startswith(f"| {system} ")}
        assert {"master", "fork server", "worker 1", "worker 2", "**total**"} <= set(rows), output
        uss = rows["worker 1"].split("|")[4].strip()
        assert re.fullmatch(r"\d+\.\d", uss), rows["worker 1"]
        assert f"| {system} | master USS ≤ 30 MiB |" in output


@pytest.mark.timeout(120)
def test_master_death_benchmark_kills_a_master_and_times_the_end_of_each_of_its_processes() -> None:
    output = run_bench("master_death.py", "--rounds", "1")
    for label in ("workers + task processes", "all, with fork server + tracker"):
        assert re.search(rf"│ {re.escape(label)} +│ +1 │ +[\d,]+ │ +[\d,]+ │ +[\d,]+ │ +[01] │ +0 │", output), output
    assert re.search(r"^load average \(1, 5, 15 min\): [\d.]+ [\d.]+ [\d.]+ before", output, re.MULTILINE), output


@pytest.mark.timeout(120)
def test_priority_benchmark_times_urgent_jobs_behind_a_backlog() -> None:
    output = run_bench("priorities.py", "--stores", "sqlite", "--backlog", "50000", "--samples", "5")
    assert re.search(r"│ +sqlite │ +[\d.]+ │ +5/5 │ +[\d.]+ │", output), output  # every urgent job started


def test_peer_benchmark_skips_systems_whose_package_is_missing(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH / "adapters"))
    try:
        import base
    finally:
        sys.path.remove(str(BENCH / "adapters"))
        for name in ("base", "processes"):  # generic names: leave nothing behind for other tests
            sys.modules.pop(name, None)

    class Missing(base.Adapter):
        packages = ("no-such-distribution-for-jobd-bench",)

    assert "is not installed" in (Missing.missing() or "")


@pytest.mark.timeout(120)
def test_rate_limit_benchmark_prints_each_second_and_the_rate_against_its_goal(mariadb: dict[str, Any]) -> None:
    output = run_bench("rate_limits.py", "--quick")
    for counted in ("started", "claimed"):  # the partial second the backlog arrived in, then 4 full ones
        assert re.search(rf"^\| {counted} \| \d+ \| \d+ \| \d+ \| \d+ \| \d+ \|$", output, re.MULTILINE), output
        assert re.search(rf"^\| {counted} \| [\d.]+/s \| [\d.]+ \| [\d.]+ \| \d+ \| \d+ \| \d+ of 5 \|$", output, re.MULTILINE), output
    assert re.search(r"^start after claim: median [\d.]+ ms", output, re.MULTILINE), output


@pytest.mark.timeout(120)
def test_bulk_benchmark_compares_submit_many_with_a_submit_loop() -> None:
    output = run_bench("bulk.py", "--quick", "--only", "jobd-sqlite", "--bulk-jobs", "2000")
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|") for line in output.splitlines() if line.startswith("| jobd")}
    bulk, loop = rows[("jobd-sqlite", "submit_many")], rows[("jobd-sqlite", "submit loop")]
    assert re.fullmatch(r"[\d,]+", bulk[4].strip()) and re.fullmatch(r"[\d,]+", bulk[5].strip()), bulk
    assert re.fullmatch(r"[\d.]+×", loop[6].strip()), loop


@pytest.mark.timeout(240)
def test_batch_benchmark_checks_on_complete_once_across_a_killed_master(mariadb: dict[str, Any]) -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH / "batches.py"), "--quick"], capture_output=True, text=True, timeout=230,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    assert "| 1 | 2,000 |" in finished.stdout
    assert "on_complete exactly once, after the last member, with the batch's counts: yes" in finished.stdout


@pytest.mark.timeout(120)
def test_submit_rate_benchmark_sets_jobd_submit_beside_the_drivers_own_insert_and_the_servers() -> None:
    output = run_bench("submit_rate.py", "--submits", "50", "--rounds", "1")
    for mode, statements in (("imports", "1.00"), ("catalogue", "1.00"), ("driver", "1.00"), ("server", "1.00")):
        assert re.search(rf"^\| {mode} +\| +[\d,]+ \| +[\d.]+ \| +[\d.]+ \| +{statements} \|", output, re.MULTILINE), output
    assert re.search(r"^jobd.submit \(catalogue\) spends -?[\d.]+ µs per submit above the driver's own INSERT", output, re.MULTILINE), output
    assert re.search(r"^The server alone commits [\d,]+ one-row INSERTs/s", output, re.MULTILINE), output


@pytest.mark.timeout(120)
def test_schedule_latency_benchmark_reports_every_job_and_the_first_and_last_of_each_tick() -> None:
    output = run_bench("schedule_latency.py", "--entries", "5", "--seconds", "4")
    for label in ("every job", "first of a tick", "last of a tick"):
        row = next((line for line in output.splitlines() if line.strip().startswith(label)), None)
        assert row is not None, output
        count, *milliseconds = row.strip()[len(label):].split()
        assert int(count) > 0 and len(milliseconds) == 5 and all(re.fullmatch(r"-?\d+\.\d", value) for value in milliseconds), row


@pytest.mark.timeout(120)
def test_peer_benchmark_puts_mariadbs_own_commit_rate_beside_the_submit_loops(mariadb: dict[str, Any]) -> None:
    output = run_bench("peers.py", "--quick", "--only", "jobd-mariadb", "--workloads", "submit")
    floor = next(line for line in output.splitlines() if line.startswith("MariaDB alone, same run: "))
    assert re.search(r"INSERTs/s \(\d+ µs each\)", floor), floor
    assert re.search(r"jobd-mariadb \d+\.\d\d×", floor), floor
