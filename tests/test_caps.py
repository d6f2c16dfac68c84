"""Caps on what a task produces (jobd.output_caps): pure functions, no processes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from jobd.output_caps import (
    OutputCaps,
    OutputRejected,
    cap_error,
    cap_log_line,
    cap_progress,
    cap_traceback,
    clean_text,
    encode_checkpoint,
    encode_result,
    human_size,
    parse_size,
    truncate_text,
)
from jobd.config import config_from_dict
from jobd.errors import ConfigError, InvalidArgs
from jobd.job import encode_args

MB = 1024 * 1024


def test_a_100_kb_error_line_is_cut_to_its_cap_with_a_marker_saying_how_much_went() -> None:
    error = "ValueError: " + "E" * 100_000
    capped = cap_error(error, OutputCaps())
    assert capped is not None
    assert len(capped.encode()) <= 4096
    assert capped.startswith("ValueError: EEEE")
    removed = int(capped.rsplit("[truncated ", 1)[1].split(" bytes]")[0].replace(",", ""))
    assert capped.endswith(f"… [truncated {removed:,} bytes]")
    assert len(capped.encode()) - len(f" … [truncated {removed:,} bytes]".encode()) + removed == len(error.encode())


def test_text_within_its_cap_is_left_as_it_is() -> None:
    assert truncate_text("short", 100) == "short"
    assert cap_error(None, OutputCaps()) is None
    text = "é" * 50  # 100 bytes exactly
    assert truncate_text(text, 100) == text


@pytest.mark.parametrize("character", ["é", "€", "😀"])
def test_text_is_cut_on_a_character_boundary(character: str) -> None:
    for cap in range(256, 300):
        capped = truncate_text(character * 1000, cap)
        assert len(capped.encode("utf-8")) <= cap
        assert capped.encode("utf-8").decode("utf-8") == capped  # no half character
        assert capped.startswith(character)


def test_a_traceback_keeps_its_start_and_its_end() -> None:
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 20_000 + "ValueError: the real reason"
    capped = cap_traceback(traceback, OutputCaps(traceback_bytes=4096))
    assert capped is not None and len(capped.encode()) <= 4096
    assert capped.startswith("Traceback (most recent call last):")
    assert capped.endswith("ValueError: the real reason")
    assert "\n… [truncated " in capped


def test_lone_surrogates_are_escaped_so_any_driver_can_encode_the_text() -> None:
    name = b"report-\xff.csv".decode("utf-8", "surrogateescape")
    cleaned = clean_text(f"cannot open {name}")
    assert cleaned == "cannot open report-\\udcff.csv"
    cleaned.encode("utf-8")
    assert cap_log_line(name * 10_000, 300).encode("utf-8")
    assert clean_text("naïve 😀") == "naïve 😀"


def test_a_result_over_its_cap_is_refused_with_its_size_and_the_setting() -> None:
    with pytest.raises(OutputRejected, match=r"^result is 17\.0 MB, over max_result_bytes = 1 MB$"):
        encode_result("x" * (17 * MB + 1000), OutputCaps())
    with pytest.raises(OutputRejected, match=r"^checkpoint is 2\.0 MB, over max_checkpoint_bytes = 64 KB$"):
        encode_checkpoint(["y" * (2 * MB)], OutputCaps(checkpoint_bytes=64 * 1024))
    assert encode_result({"ok": "x" * 1000}, OutputCaps()) == json.dumps({"ok": "x" * 1000}, separators=(",", ":"))


def test_a_result_that_is_not_json_or_holds_nan_is_refused_with_a_reason() -> None:
    with pytest.raises(OutputRejected, match="result is not JSON: Object of type set is not JSON serializable"):
        encode_result({1, 2}, OutputCaps())
    for value in (math.nan, {"ratio": math.inf}, [-math.inf]):
        with pytest.raises(OutputRejected, match="result holds NaN or Infinity"):
            encode_result(value, OutputCaps())


def test_args_holding_nan_are_refused_rather_than_stored_as_invalid_json() -> None:
    with pytest.raises(InvalidArgs, match="NaN or Infinity"):
        encode_args({"ratio": math.nan})


def test_a_result_with_lone_surrogates_is_stored_as_valid_json_with_the_escape_as_text() -> None:
    text = encode_result({"file": "report-\udcff.csv", "k\udc80": 1}, OutputCaps())
    text.encode("utf-8")
    assert json.loads(text) == {"file": "report-\\udcff.csv", "k\\udc80": 1}


def test_a_progress_report_gets_its_message_capped_and_loses_non_finite_numbers() -> None:
    report = {"done": math.nan, "total": math.inf, "percent": 50.0, "message": "P" * MB, "started_at": 1.0}
    capped = cap_progress(report, OutputCaps())
    assert capped["done"] is None and capped["total"] is None and capped["percent"] == 50.0
    assert len(capped["message"].encode()) <= 2048 and "… [truncated " in capped["message"]
    json.dumps(capped, allow_nan=False)


def test_sizes_read_like_people_write_them() -> None:
    assert [human_size(size) for size in (900, 4096, MB, 17 * MB, int(17.04 * MB))] == [
        "900 bytes", "4 KB", "1 MB", "17 MB", "17.0 MB",
    ]
    assert [parse_size(text) for text in (4096, "4096", "64 KB", "1 MB", "1.5mb", "512 KiB")] == [
        4096, 4096, 65536, MB, 1572864, 524288,
    ]
    with pytest.raises(ValueError):
        parse_size("lots")


def test_caps_are_settings_with_a_per_daemon_override() -> None:
    config = config_from_dict(
        {"max_result_bytes": "2 MB", "max_error_bytes": 1000, "daemons": {"big": {"max_result_bytes": "8 MB"}, "plain": {}}},
        Path("/tmp/caps/jobd.toml"),
    )
    assert config.output_caps("big").result_bytes == 8 * MB
    assert config.output_caps("plain").result_bytes == 2 * MB
    assert config.output_caps("big").error_bytes == 1000
    assert config.daemons["plain"].output_caps() == config.output_caps("plain")
    assert config_from_dict({}, Path("/tmp/caps/jobd.toml")).output_caps() == OutputCaps()


@pytest.mark.parametrize("setting", [{"max_error_bytes": 100_000}, {"max_result_bytes": "20 MB"}, {"max_log_line_bytes": 10}])
def test_a_cap_beyond_what_the_stores_hold_is_refused_by_the_config(setting: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(setting))):
        config_from_dict(setting, Path("/tmp/caps/jobd.toml"))


def test_a_worker_forwards_a_1_mb_log_record_cut_to_its_cap_traceback_included() -> None:
    import logging
    import multiprocessing
    import os
    import sys

    from jobd.observability.log_channels import FrameSplitter, ToMaster, decode_record

    reader, writer = multiprocessing.Pipe(duplex=False)
    handler = ToMaster(writer, max_line_bytes=16 * 1024)
    try:
        raise ValueError("V" * MB + " \udcff")
    except ValueError:
        record = logging.LogRecord("jobd.task.t", logging.ERROR, __file__, 1, "%s", ("L" * MB,), sys.exc_info())
    handler.emit(record)
    writer.close()
    data = b""
    while chunk := os.read(reader.fileno(), 65536):
        data += chunk
    reader.close()
    (payload,) = FrameSplitter().feed(data)
    sent = decode_record(payload)
    assert len(sent.getMessage().encode()) <= 16 * 1024 and "… [truncated " in sent.getMessage()
    assert sent.exc_text is not None and len(sent.exc_text.encode()) <= 16 * 1024
    assert sent.exc_text.startswith("Traceback (most recent call last):")
    assert sent.exc_text.endswith("VVVV \\udcff")  # its end is kept, the surrogate escaped
