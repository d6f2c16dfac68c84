"""Workers' log records on pipes of their own: framing, a writer killed mid-record, a bounded stop."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection

import pytest

from jobd.observability.log_channels import CorruptStream, FrameSplitter, LogReceiver, ToMaster, decode_record, encode_record, MAX_FRAME_BYTES

from support import wait_until

CONTEXT = multiprocessing.get_context("forkserver")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [record.getMessage() for record in list(self.records)]


def make_record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("jobd.test", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_frames_cut_anywhere_by_reads_come_out_whole_and_in_order() -> None:
    stream = b"".join(encode_record(make_record("line %d", n, job_id=n)) for n in range(3))
    splitter = FrameSplitter()
    payloads = [payload for index in range(len(stream)) for payload in splitter.feed(stream[index:index + 1])]
    records = [decode_record(payload) for payload in payloads]
    assert [(r.getMessage(), getattr(r, "job_id")) for r in records] == [("line 0", 0), ("line 1", 1), ("line 2", 2)]
    assert splitter.pending == 0


def test_a_record_keeps_its_traceback_as_text_and_a_huge_one_its_head() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("jobd.test", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info())
    (payload,) = FrameSplitter().feed(encode_record(record))
    assert "ValueError: boom" in decode_record(payload).exc_text
    huge = encode_record(make_record("x" * (MAX_FRAME_BYTES + 10)))
    (payload,) = FrameSplitter().feed(huge)
    assert len(huge) <= MAX_FRAME_BYTES and "[cut: the record was" in decode_record(payload).getMessage()


def test_an_impossible_frame_length_is_a_corrupt_stream() -> None:
    with pytest.raises(CorruptStream):
        list(FrameSplitter().feed(b"\xff\xff\xff\xff rest"))


def _write_forever(channel: Connection) -> None:
    handler = ToMaster(channel)
    n = 0
    while True:
        n += 1
        handler.handle(make_record("flood %d %s", n, "y" * 50_000))


def test_a_writer_killed_in_the_middle_of_a_record_costs_only_its_own_records() -> None:
    collect = Collect()
    receiver = LogReceiver([collect], CONTEXT)
    try:
        flood_end = receiver.open_channel()
        flooder = CONTEXT.Process(target=_write_forever, args=(flood_end,), daemon=True)
        flooder.start()
        flood_end.close()
        wait_until(lambda: len(collect.records) > 20, timeout=20, message="the flood to arrive")
        assert flooder.pid is not None
        os.kill(flooder.pid, signal.SIGKILL)  # as often as not in the middle of a frame
        flooder.join(10)
        wait_until(lambda: receiver.open_channels == 0, timeout=5, message="the dead writer's pipe to be closed")
        quiet_end = receiver.open_channel()
        ToMaster(quiet_end).handle(make_record("still heard", job_id=7))
        wait_until(lambda: "still heard" in collect.messages(), timeout=5, message="the next worker's record")
        assert all(m.startswith("flood") or m == "still heard" for m in collect.messages())
        quiet_end.close()
    finally:
        receiver.stop()


def test_stop_returns_within_its_deadline_even_if_a_handler_is_stuck() -> None:
    release = threading.Event()

    class Stuck(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            release.wait(30)

    receiver = LogReceiver([Stuck()], CONTEXT)
    end = receiver.open_channel()
    ToMaster(end).handle(make_record("wedges the handler"))
    time.sleep(0.2)
    started = time.monotonic()
    receiver.stop(timeout=0.5)
    assert time.monotonic() - started < 1.5
    release.set()
    end.close()
