"""Operators' text files are UTF-8; one that is not is named by the line of its first bad byte."""

from __future__ import annotations

import pytest

from jobd.text_files import NotUtf8, decode_utf8


def test_utf8_text_is_read_as_it_is() -> None:
    assert decode_utf8("résumé\n✓\n".encode()) == "résumé\n✓\n"


@pytest.mark.parametrize(
    "data, line, byte",
    [(b"\xff", 1, 0xFF), (b"ok\nok\ncaf\xe9\n", 3, 0xE9), (b"ok\r\n\xc3(\n", 2, 0xC3)],
)
def test_the_first_byte_that_is_not_utf8_is_named_with_its_line(data: bytes, line: int, byte: int) -> None:
    with pytest.raises(NotUtf8) as raised:
        decode_utf8(data)
    assert (raised.value.line, raised.value.byte) == (line, byte)
    assert str(raised.value) == f"line {line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
