"""The offer: a file beside the control socket saying which daemons' jobs a master takes straight from a submit.

A master with an idle worker (and nothing prefetched) for a daemon keeps
``SOCKET.handoff`` (mode 0660), naming itself, those daemons and their
workers' sockets: ``handoff/2 MASTER``, then a line per daemon with its
workers' socket suffixes. It is replaced in one rename, so a reader sees the
old offer or the new one, and a submitter reads it again only when it
changed (one ``stat`` per submit). It is only a hint: a torn, foreign or
stale offer costs a job at most a trip through the queue.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import defaults
from ..names import NAME_PATTERN
from .sockets import is_worker_suffix, path_beside

FORMAT = "handoff/2"
MAX_OFFER_BYTES = 16 * 1024


@dataclass(frozen=True)
class Offer:
    """A master, the daemons it takes jobs for straight from a submit, and their workers' sockets."""

    master: str
    daemons: frozenset[str]
    workers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # daemon → socket suffixes ("w3")

    def worker_socket(self, control_socket: Path, daemon: str) -> Path | None:
        """One of ``daemon``'s workers' sockets, picked at random (submits spread over them), or None."""
        suffixes = self.workers.get(daemon)
        return path_beside(control_socket, random.choice(suffixes)) if suffixes else None


def format_offer(offer: Offer) -> str:
    """``handoff/2 MASTER``, then a line per daemon: its name and its workers' socket suffixes."""
    lines = [f"{FORMAT} {offer.master}"]
    lines.extend(" ".join((daemon, *offer.workers.get(daemon, ()))) for daemon in sorted(offer.daemons))
    return "\n".join(lines) + "\n"


def parse_offer(text: str) -> Offer | None:
    """The offer in ``text``, or None if it is not one (a torn or foreign file offers nothing)."""
    lines = text.split("\n")
    if len(lines) < 2 or lines[-1] != "":
        return None
    head, _, master = lines[0].partition(" ")
    if head != FORMAT or not master or len(master) > 64 or not master.isprintable() or " " in master:
        return None
    workers: dict[str, tuple[str, ...]] = {}
    for line in lines[1:-1]:
        daemon, *suffixes = line.split(" ")
        if not NAME_PATTERN.fullmatch(daemon) or daemon in workers or not all(map(is_worker_suffix, suffixes)):
            return None
        workers[daemon] = tuple(suffixes)
    return Offer(master, frozenset(workers), {daemon: found for daemon, found in workers.items() if found})


def publish(path: Path, offer: Offer | None) -> None:
    """Replace the offer at ``path`` in one rename (readers see the old or the new one), or remove it."""
    if offer is None or not offer.daemons:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, defaults.CONTROL_SOCKET_MODE)
    try:
        os.write(fd, format_offer(offer).encode("ascii"))
        os.fchmod(fd, defaults.CONTROL_SOCKET_MODE)  # whoever may wake the master may read whom to hand to
    finally:
        os.close(fd)
    os.replace(temporary, path)


class OfferReader:
    """A submitter's view of the offer: read again only when the file changed (one ``stat`` per submit)."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int, int], Offer | None]] = {}

    def read(self, path: Path) -> Offer | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == version:
            return seen[1]
        offer = None
        if status.st_size <= MAX_OFFER_BYTES:
            try:
                with open(path, encoding="ascii") as file:
                    offer = parse_offer(file.read(MAX_OFFER_BYTES + 1))
            except (OSError, UnicodeDecodeError):
                offer = None
        self._seen[path] = (version, offer)
        return offer
