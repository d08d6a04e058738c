"""The broad-crawl benchmark's block in /etc/hosts: added between marker lines, always removed.

:func:`hosts_block` adds the block and removes it on the way out, whatever ends the run: a normal
exit, an exception, Ctrl-C, or SIGTERM / SIGHUP (which the benchmark turns into
``KeyboardInterrupt``). A run killed outright (SIGKILL) leaves its block behind; the next run
removes it before anything else (:func:`remove_stale`). Only the lines between the markers are
ever touched: the rest of the file is written back byte for byte.

The file is rewritten in place (truncate and one write), not renamed over: /etc/hosts is often a
bind mount, which cannot be replaced by a rename.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

HOSTS = Path("/etc/hosts")
BEGIN = "# >>> trio-crawler scripts/bench_broad: generated, removed when the benchmark exits >>>"
END = "# <<< trio-crawler scripts/bench_broad <<<"


def strip_block(text: str) -> tuple[str, int]:
    """``text`` without the benchmark's blocks, and how many lines were removed.

    A BEGIN line without its END (a write cut short) removes everything after it that is a
    benchmark line (``127.x.y.z h*.bench.test``), and nothing else.
    """
    out: list[str] = []
    removed = 0
    inside = False
    for line in text.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        if bare == BEGIN:
            inside = True
            removed += 1
            continue
        if inside:
            if bare == END:
                inside = False
                removed += 1
                continue
            if _is_bench_line(bare):
                removed += 1
                continue
            inside = False  # an unterminated block ends at the first foreign line
        elif bare == END:
            removed += 1
            continue
        out.append(line)
    return "".join(out), removed


def _is_bench_line(line: str) -> bool:
    parts = line.split()
    return len(parts) == 2 and parts[0].startswith("127.") and parts[1].endswith(".bench.test")


def with_block(text: str, entries: Iterable[tuple[str, str]]) -> str:
    """``text`` (without any earlier block) followed by a block of ``address name`` lines."""
    base, _ = strip_block(text)
    if base and not base.endswith("\n"):
        base += "\n"
    lines = [BEGIN, *(f"{address} {name}" for address, name in entries), END]
    return base + "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale(path: Path = HOSTS) -> int:
    """Remove a block an earlier run left behind; how many lines went."""
    text = path.read_text()
    stripped, removed = strip_block(text)
    if removed:
        _write(path, stripped)
    return removed


@contextlib.contextmanager
def hosts_block(entries: Iterable[tuple[str, str]], path: Path = HOSTS) -> Iterator[int]:
    """Add the ``(address, name)`` entries to ``path`` for the duration; yields the count."""
    pairs = list(entries)
    original = path.read_text()
    try:
        _write(path, with_block(original, pairs))
        yield len(pairs)
    finally:
        # A second Ctrl-C or a SIGTERM waits until the block is gone (blocked, then delivered).
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            remove_stale(path)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
