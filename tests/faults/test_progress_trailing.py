"""A progress report made inside the throttle window is sent when the window ends, not dropped."""

from __future__ import annotations

import time
from typing import Any

from jobd.context import TaskContext
from jobd.store.jobs import NewJob
from jobd.trailing import TrailingThrottle
from tests.support import Deployment, wait_until


def test_a_report_inside_the_window_is_due_when_the_window_ends() -> None:
    throttle: TrailingThrottle[str] = TrailingThrottle(0.2)
    assert throttle.offer("first", 10.0) == "first"
    assert throttle.offer("second", 10.05) is None
    assert throttle.next_due() == 10.2
    assert throttle.due(10.19) is None
    assert throttle.due(10.2) == "second"
    assert throttle.due(10.5) is None and throttle.next_due() is None, "sent once"


def test_only_the_latest_report_of_a_window_is_sent() -> None:
    throttle: TrailingThrottle[int] = TrailingThrottle(0.2)
    assert throttle.offer(0, 0.0) == 0
    sent = [item for step in range(1, 100) if (item := throttle.offer(step, step * 0.001)) is not None]
    assert sent == []
    assert throttle.due(0.2) == 99
    assert throttle.offer(100, 0.25) is None, "the trailing send starts a new window"
    assert throttle.due(0.4) == 100


def test_nothing_is_sent_after_the_job_ended() -> None:
    throttle: TrailingThrottle[str] = TrailingThrottle(0.2)
    throttle.offer("first", 0.0)
    throttle.offer("second", 0.1)
    throttle.close()
    assert throttle.next_due() is None
    assert throttle.due(1.0) is None
    assert throttle.offer("late", 5.0) is None
    assert throttle.offer("final", 5.0, force=True) is None


class _Sink:
    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []

    def report(self, job_id: int, progress: dict[str, Any]) -> None:
        self.reports.append(progress)


class _ManualFlusher:
    """Holds what the context schedules; the test fires it."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Any]] = []

    def schedule(self, delay: float, callback: Any) -> None:
        self.scheduled.append((delay, callback))

    def fire(self) -> None:
        scheduled, self.scheduled = self.scheduled, []
        for _delay, callback in scheduled:
            callback()


def _context(now: list[float], sink: _Sink, flusher: _ManualFlusher) -> TaskContext:
    return TaskContext(job_id=1, attempt=1, daemon="main", task="t", last_checkpoint=None, progress_sink=sink,
                       checkpoint_sink=None, is_cancelled=lambda: False,  # type: ignore[arg-type]
                       clock=lambda: now[0], flusher=flusher)  # type: ignore[arg-type]


def test_ctx_progress_sends_the_held_back_report_at_the_window_end_on_an_injected_clock() -> None:
    now, sink, flusher = [100.0], _Sink(), _ManualFlusher()
    ctx = _context(now, sink, flusher)
    ctx.progress(1, 10, "first")
    now[0] = 100.05
    ctx.progress(2, 10, "second")
    now[0] = 100.1
    ctx.progress(3, 10, "third")
    assert [r["message"] for r in sink.reports] == ["first"]
    assert len(flusher.scheduled) == 1 and abs(flusher.scheduled[0][0] - 0.15) < 1e-9, "one timer, due at the window end"
    now[0] = 100.2
    flusher.fire()
    assert [r["message"] for r in sink.reports] == ["first", "third"]
    assert sink.reports[-1]["updated_at"] == 100.1, "the report says when it was made"
    flusher.fire()
    assert len(sink.reports) == 2


def test_ctx_close_drops_the_held_back_report() -> None:
    now, sink, flusher = [0.0], _Sink(), _ManualFlusher()
    ctx = _context(now, sink, flusher)
    ctx.progress(1, 10, "first")
    now[0] = 0.1
    ctx.progress(2, 10, "second")
    ctx.close()
    now[0] = 1.0
    flusher.fire()
    ctx.progress(3, 10, "after the end")
    assert [r["message"] for r in sink.reports] == ["first"]


def test_a_report_followed_by_a_blocking_call_reaches_the_masters_status_within_a_second(deployment: Deployment) -> None:
    deployment.write_config({"main": {"workers": 1, "modules": ["testtasks", "progress_tasks"]}})
    deployment.start_master()
    job_id = deployment.store.jobs.insert(NewJob("main", "p.report_then_block", {"gap": 0.05, "block": 3.0}))

    def message() -> str | None:
        for worker in deployment.status()["daemons"]["main"]["workers"]:
            if worker.get("job_id") == job_id:
                return (worker.get("progress") or {}).get("message")
        return None

    wait_until(lambda: message() is not None, timeout=30, interval=0.02, message="the job's first report")
    first_seen = time.monotonic()
    wait_until(lambda: message() == "second", timeout=5, interval=0.02, message="the second report")
    took = time.monotonic() - first_seen
    print(f"second report shown {took:.3f}s after the first was seen")
    assert took < 1.0
    deployment.wait_all_final([job_id])
