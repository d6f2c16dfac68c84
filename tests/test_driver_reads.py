"""Reading jobs through the driver alone gives what the store's own reads give, on SQLite and MariaDB.

``jobd jobs`` and ``jobd job`` with no master read the store without
SQLAlchemy (``jobd.store.driver_reads``); a master, the dashboard and the
operator commands read it through SQLAlchemy. Both run the statements of
``jobd.store.job_reads_sql``, so every filter must give the same jobs, in the
same order, decoded alike, whichever way in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobd.errors import StoreUnavailable, UnknownJob
from jobd.states import JobState
from jobd.store import NewJob, Store
from jobd.store.driver_reads import driver_job_reads
from jobd.store.engine import driver_target
from jobd.store.job_reads_sql import JobFilter, JobReads
from jobd.store.row_decoding import decode_found, decode_row


def seeded(store: Store) -> dict[str, int]:
    """Jobs of three daemons and two tasks in several states, created 100 s apart from t=1,000."""
    ids: dict[str, int] = {}
    plan = [("alpha-1", "alpha", "t.a"), ("main-1", "main", "t.a"), ("zeta-1", "zeta", "t.b"),
            ("main-2", "main", "t.b"), ("alpha-2", "alpha", "t.b"), ("main-3", "main", "t.a")]
    for number, (name, daemon, task) in enumerate(plan):
        ids[name] = store.jobs.insert(NewJob(daemon=daemon, task=task, args={"n": number, "text": "é"}), now=1_000.0 + 100 * number)
    store.jobs.cancel(ids["alpha-1"])
    store.jobs.cancel(ids["zeta-1"])
    store.jobs.claim("main", 1, "m1")
    return ids


FILTERS = [
    JobFilter(),
    JobFilter(limit=2),
    JobFilter(states=("cancelled",)),
    JobFilter(states=("queued", "running")),
    JobFilter(states=("cancelled",), daemon="zeta"),
    JobFilter(states=("queued", "running"), daemon="main"),
    JobFilter(daemon="main", task="t.a"),
    JobFilter(task="t.b"),
    JobFilter(states=("not-a-state",)),
    JobFilter(daemon="nobody"),
    JobFilter(created_after=1_250.0),
    JobFilter(created_before=1_150.0),
    JobFilter(created_after=1_050.0, created_before=1_350.0, task="t.b"),
    JobFilter(created_after=9_999.0),
]


@pytest.mark.parametrize("wanted", FILTERS, ids=repr)
def test_the_driver_lists_what_the_store_lists(store: Store, store_url: str, wanted: JobFilter) -> None:
    seeded(store)
    through_sqlalchemy = store.jobs.list(
        states=list(wanted.states), daemon=wanted.daemon, task=wanted.task, limit=wanted.limit,
        created_after=wanted.created_after, created_before=wanted.created_before,
    )
    with driver_job_reads(driver_target(store_url)) as reads:
        through_driver = [decode_row(row) for row in reads.page(wanted)]
    assert through_driver == through_sqlalchemy


def test_the_filters_select_the_expected_jobs(store: Store, store_url: str) -> None:
    ids = seeded(store)
    with driver_job_reads(driver_target(store_url)) as reads:
        def listed(**filters: object) -> list[int]:
            return [int(row["id"]) for row in reads.page(JobFilter(**filters))]  # type: ignore[arg-type]

        assert listed(states=("cancelled",)) == [ids["zeta-1"], ids["alpha-1"]]
        assert listed(states=("queued", "running"), daemon="main") == [ids["main-3"], ids["main-2"], ids["main-1"]]
        assert listed(task="t.b", limit=2) == [ids["alpha-2"], ids["main-2"]]
        assert listed(created_after=1_250.0, created_before=1_450.0) == [ids["alpha-2"], ids["main-2"]]
        assert listed(created_after=9_999.0) == []


def test_one_job_reads_alike_and_an_unknown_id_is_named(store: Store, store_url: str) -> None:
    ids = seeded(store)
    with driver_job_reads(driver_target(store_url)) as reads:
        job = decode_found(reads.get(ids["main-1"]), ids["main-1"])
        assert job == store.jobs.get(ids["main-1"])
        assert job.state is JobState.RUNNING and job.args == {"n": 1, "text": "é"}
        with pytest.raises(UnknownJob, match="no job with id 424242"):
            decode_found(reads.get(424242), 424242)


def test_a_store_without_jobd_tables_says_to_run_init(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="no jobd tables .* run `jobd init` first"):
        with driver_job_reads(driver_target(url)) as reads:
            reads.page(JobFilter())


def test_values_are_parameters_never_sql(store: Store, store_url: str) -> None:
    seeded(store)
    hostile = "main' OR '1'='1"
    with driver_job_reads(driver_target(store_url)) as reads:
        assert reads.page(JobFilter(daemon=hostile)) == []
        assert reads.page(JobFilter(states=(hostile,))) == []


def test_statements_carry_no_value_in_their_text() -> None:
    statements: list[tuple[str, tuple[object, ...]]] = []

    def rows(sql: str, parameters: tuple[object, ...]) -> list[dict[str, object]]:
        statements.append((sql, parameters))
        return []

    JobReads(rows, "mysql").page(JobFilter(states=("dead",), daemon="sms", task="t.x", limit=7, before_id=99))
    [(sql, parameters)] = statements
    assert "sms" not in sql and "dead" not in sql and "99" not in sql
    assert sql.count("%s") == len(parameters) == 5


def test_the_driver_reads_batches_as_the_store_does(store: Store, store_url: str) -> None:
    from jobd.batch_record import BatchState
    from jobd.errors import UnknownBatch
    from jobd.store.driver_reads import driver_status_reads

    first = store.batches.create("first", now=1_000.0)
    store.batches.add_members(first, [NewJob(daemon="main", task="t.a", args={}) for _ in range(3)], now=1_000.0)
    store.batches.seal(first)
    second = store.batches.create("second", now=1_100.0)
    store.batches.cancel(second)
    with driver_status_reads(driver_target(store_url)) as reads:
        assert reads.batches() == store.batches.list()
        assert [batch.id for batch in reads.batches()] == [second, first]
        assert reads.batches(states=[BatchState.CANCELLED]) == store.batches.list(states=[BatchState.CANCELLED])
        assert [batch.id for batch in reads.batches(limit=1)] == [second]
        assert reads.batch(first) == store.batches.get(first) and reads.batch(first).total == 3
        assert reads.batch_member_states(first) == store.batches.member_states(first) == {"queued": 3}
        with pytest.raises(UnknownBatch, match="no batch has id 424242"):
            reads.batch(424242)
