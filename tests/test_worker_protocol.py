"""Pure logic of the master↔worker hot path: frames, reading many at once, and the pipeline depth."""

from __future__ import annotations

import os
import pickle
import struct
from multiprocessing import Pipe

import pytest

from jobd.workers import protocol
from jobd.workers.pipelining import MAX_DEPTH, SHORT_JOB_SECONDS, Pipeline
from jobd.workers.worker import _Inbox


def test_a_frame_round_trips_every_message_kind_in_order() -> None:
    messages: list[protocol.Message] = [
        protocol.RunJob(7, 1, "mail.send", {"to": "a@b.c"}, {"sent": 3}),
        protocol.CancelJob(8),
        protocol.StopWorker(),
        protocol.WorkerReady(1234),
        protocol.WorkerFailed("no module named x"),
        protocol.ProgressReport(7, {"done": 1, "total": 2}),
        protocol.JobFinished(7, 1, "failed", error="boom", traceback="tb", permanent=True, duration=0.5),
        protocol.HandedJob("main", 9, -2, None, "mail.send", '{"to":"a@b.c"}'),
        protocol.PassedHandoff(b"run/1 main 9", False),
        protocol.RunJob(10, 1, "mail.send", {}, None, None, 100),
        protocol.JobJumpedAhead(10),
    ]
    assert protocol.decode(protocol.encode(messages)) == messages


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"not a pickle", "unreadable worker frame"),
        (pickle.dumps((99, [])), "worker protocol version 99 is not"),
    ],
)
def test_a_frame_from_another_protocol_is_refused_with_a_reason(frame: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        protocol.decode(frame)


def test_an_unknown_message_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown worker message"):
        protocol.decode(pickle.dumps((protocol.PROTOCOL_VERSION, [("launch-missiles", 1)])))


def test_the_reader_splits_a_burst_of_frames_written_by_send_bytes() -> None:
    master_end, worker_end = Pipe(duplex=True)
    try:
        finished = [protocol.JobFinished(job_id, 1, "succeeded") for job_id in range(50)]
        for message in finished:
            worker_end.send_bytes(protocol.encode([message]))
        reader = protocol.FrameReader(master_end.fileno())
        frames: list[bytes] = []
        while len(frames) < 50:
            frames += reader.read()
        assert [m for frame in frames for m in protocol.decode(frame)] == finished
    finally:
        master_end.close()
        worker_end.close()


def test_the_reader_keeps_a_partial_frame_until_the_rest_arrives() -> None:
    read_fd, write_fd = os.pipe()
    try:
        payload = protocol.encode([protocol.JobFinished(1, 1, "succeeded", result="x" * 100)])
        framed = struct.pack("!i", len(payload)) + payload
        reader = protocol.FrameReader(read_fd)
        os.write(write_fd, framed[:10])
        assert reader.read() == []
        os.write(write_fd, framed[10:])
        assert reader.read() == [payload]
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_the_reader_reports_a_closed_pipe() -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)
    try:
        with pytest.raises(EOFError):
            protocol.FrameReader(read_fd).read()
    finally:
        os.close(read_fd)


def test_a_worker_holds_one_job_until_durations_are_known() -> None:
    pipeline = Pipeline()
    assert pipeline.depth() == 1
    assert pipeline.room([], pipeline.depth()) == 1


def test_short_jobs_are_handed_out_a_few_milliseconds_ahead() -> None:
    noop = Pipeline()
    for _ in range(20):
        noop.record("noop", 0.00003)
    assert noop.depth() == MAX_DEPTH
    assert noop.room(["noop"] * 10, noop.depth()) == MAX_DEPTH - 10
    tens = Pipeline()
    for _ in range(20):
        tens.record("report", 0.010)
    assert tens.depth() == 2  # the next job waits in the pipe; no more


def test_nothing_waits_behind_a_task_never_seen_or_recently_long() -> None:
    pipeline = Pipeline()
    for _ in range(20):
        pipeline.record("send_one", 0.001)
        pipeline.record("send_campaign", 600.0)
    depth = pipeline.depth()
    assert depth > 1
    assert pipeline.room(["send_one"], depth) == depth - 1
    assert pipeline.room(["send_campaign"], depth) == 0
    assert pipeline.room(["send_one", "brand_new_task"], depth) == 0


def test_one_long_run_stops_queueing_behind_its_task_at_once_and_for_a_while() -> None:
    pipeline = Pipeline()
    for _ in range(20):
        pipeline.record("sync", 0.001)
    assert pipeline.is_short("sync")
    pipeline.record("sync", SHORT_JOB_SECONDS * 20)
    assert not pipeline.is_short("sync")
    for _ in range(20):
        pipeline.record("sync", 0.001)
    assert not pipeline.is_short("sync")  # the slow run is still recent
    for _ in range(100):
        pipeline.record("sync", 0.001)
    assert pipeline.is_short("sync")


def test_send_writes_the_framing_connections_read_even_for_frames_larger_than_the_pipe() -> None:
    import threading

    master_end, worker_end = Pipe(duplex=True)
    big = protocol.RunJob(1, 1, "t.big", {"blob": "x" * 300_000}, None)
    messages: list[protocol.Message] = [protocol.JobFinished(7, 1, "succeeded"), big, protocol.StopWorker()]
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(master_end.recv_bytes() for _ in messages))
    reader.start()
    try:
        for message in messages:
            protocol.send(worker_end.fileno(), [message])
        reader.join(timeout=30)
        assert [protocol.decode(frame) for frame in received] == [[message] for message in messages]
    finally:
        master_end.close()
        worker_end.close()


def test_a_worker_runs_the_most_urgent_job_it_was_handed_next_and_says_so() -> None:
    master_end, worker_end = Pipe()
    inbox = _Inbox(worker_end)
    try:
        protocol.send(master_end.fileno(), [protocol.RunJob(n, 1, "t.work", {}, None) for n in (1, 2, 3)])
        assert inbox.next_job().job_id == 1 and not inbox.jumped  # type: ignore[union-attr]
        protocol.send(master_end.fileno(), [protocol.RunJob(4, 1, "t.work", {}, None, None, 100), protocol.RunJob(5, 1, "t.work", {}, None)])
        assert inbox.next_job().job_id == 4 and inbox.jumped  # type: ignore[union-attr]
        assert [inbox.next_job().job_id for _ in range(3)] == [2, 3, 5]  # type: ignore[union-attr]
        assert not inbox.jumped
    finally:
        master_end.close()
        worker_end.close()
