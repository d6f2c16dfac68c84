"""Reading the text files operators write (jobd.toml, schedule files, a crontab, migration files) as UTF-8.

A file saved in another encoding (an old crontab in Latin-1, a comment
typed on a Windows machine) failed with a bare ``UnicodeDecodeError``
traceback. ``read_utf8`` says which line holds the first byte that is not
UTF-8, and which byte, so the operator can find it.
"""

from __future__ import annotations

from pathlib import Path


class NotUtf8(ValueError):
    """A file that is not UTF-8 text: where its first undecodable byte is."""

    def __init__(self, line: int, byte: int) -> None:
        super().__init__(f"line {line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8")
        self.line = line
        self.byte = byte


def decode_utf8(data: bytes) -> str:
    """``data`` as text; ``NotUtf8`` naming the line of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise NotUtf8(data.count(b"\n", 0, error.start) + 1, data[error.start]) from None


def read_utf8(path: Path) -> str:
    """The text of ``path`` (``OSError`` if it cannot be read; ``NotUtf8`` if it is not UTF-8)."""
    return decode_utf8(path.read_bytes())
