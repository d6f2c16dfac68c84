"""A rate limit served by two masters on one MariaDB store: the store's bucket paces both."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from jobd.store import NewJob
from support import Deployment, wait_until

RATE, JOBS = 20, 200


def per_calendar_second(times: list[float]) -> dict[int, int]:
    """How many events fell in each calendar second (epoch seconds, whole)."""
    counts: dict[int, int] = {}
    for at in times:
        counts[int(at)] = counts.get(int(at), 0) + 1
    return counts


@pytest.mark.timeout(120)
def test_two_masters_together_start_no_more_than_the_rate_allows(
    deployment_factory: Callable[[str], Deployment], mariadb_url: str, tmp_path: Path,
) -> None:
    # A poll every 5 s: only the masters waking when the next token is due keeps the rate.
    members = [deployment_factory(mariadb_url) for _ in range(2)]
    for member in members:
        member.write_config({"main": {"workers": 2, "task_rate_limits": {"t.stamp": f"{RATE}/s"}}}, poll_interval=5)
        member.start_master()
    store = members[0].store
    store.jobs.insert_many([NewJob("main", "t.stamp", {"log_dir": str(tmp_path)}) for _ in range(JOBS)])

    def waiting_shows() -> bool:
        report = json.loads(members[1].jobd("status", "--json").stdout)
        return bool(report["daemons"]["main"].get("rate_limited"))

    (shown,) = [wait_until(waiting_shows, timeout=10, message="status to show the jobs waiting for the rate")]
    assert shown
    wait_until(lambda: store.jobs.counts().get("main") == {"succeeded": JOBS}, timeout=60, interval=0.2, message=f"{JOBS} jobs")

    jobs = store.tables["jobs"]
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(jobs.c.started_at, jobs.c.owner)).all()
    claimed = [float(started) for started, _owner in rows]
    stamps = {int(line.split()[0]): float(line.split()[1]) for line in (tmp_path / "stamps.log").read_text().splitlines()}
    assert len(stamps) == JOBS and len((tmp_path / "stamps.log").read_text().splitlines()) == JOBS, "each job ran once"
    assert len({owner for _started, owner in rows}) == 2, "both masters took part"
    burst = RATE  # the default: one second's worth
    # The limit's guarantee, on the store's own claim times: never more than the burst in any calendar second,
    # and over the whole run no more than the rate on average (the first second starts the burst at most).
    counts = per_calendar_second(claimed)
    assert max(counts.values()) <= burst, counts
    span = max(claimed) - min(claimed)
    assert JOBS - burst <= RATE * span + 1
    # And the masters kept up with it (a master claiming only at its 5 s poll would start ~4 a second).
    assert (JOBS - burst) / span > 0.8 * RATE, counts
