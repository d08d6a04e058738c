"""The hosts file, read once: names it maps answered without a ``getaddrinfo`` call.

glibc's resolver reads ``/etc/hosts`` line by line on every lookup: 0.47 ms of CPU a name with
2,000 lines and 2.64 ms with 20,000 (``scripts/bench_broad``), growing with the lines (a
blocklist has 100,000 and more). A crawl of thousands of hosts pays that for every new host.
:class:`HostsFile` parses the file once (and again when it changes) and answers the names it
maps to exactly one address; every other name, and every name when the system would not read
the file first, goes to the system resolver as before.

When the system reads the file first: on Linux, when the ``hosts:`` line of
``/etc/nsswitch.conf`` names ``files`` as its first source (glibc's order). Without that file
(glibc's own default asks DNS first), on other systems, or when the line starts elsewhere, the
table is not used.

What the table answers: a name (compared without regard to case, as glibc does) that the file
gives one address, on one or more lines. A name given two addresses (IPv4 and IPv6, or two of
one family) goes to ``getaddrinfo``, which orders them by the system's address selection
rules. So do a name ending in a dot, and an address with an IPv6 zone (``fe80::1%eth0``).

The pure part (:func:`parse_hosts`, :func:`files_first`) is synchronous and tested without a
file; :class:`HostsFile` adds the reading, which blocks (the resolver calls :meth:`refresh` in
a worker thread).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
from collections.abc import Callable

__all__ = ["HOSTS_PATH", "NSSWITCH_PATH", "HostsFile", "files_first", "parse_hosts"]

HOSTS_PATH = "/etc/hosts"
NSSWITCH_PATH = "/etc/nsswitch.conf"

#: How often (seconds) a lookup may look at the file's size and time again: a file edited
#: during a crawl is read again within this.
CHECK_SECONDS = 1.0

#: A name the file gives more than one address (left to ``getaddrinfo``).
_SEVERAL = ""


def parse_hosts(text: str) -> dict[str, str]:
    """Each name (lower case) of a hosts file and its one address; a name given several
    addresses maps to ``""``. Lines that are not an address followed by names are skipped."""
    table: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        fields = line.split()
        if len(fields) < 2 or "%" in fields[0]:
            continue
        try:
            address = str(ipaddress.ip_address(fields[0]))
        except ValueError:
            continue
        for name in fields[1:]:
            name = name.lower()
            known = table.get(name)
            if known is None:
                table[name] = address
            elif known != address:
                table[name] = _SEVERAL
    return table


def files_first(nsswitch: str) -> bool:
    """Whether an ``nsswitch.conf`` makes the hosts file the first source of host names."""
    for line in nsswitch.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("hosts:"):
            sources = line[len("hosts:") :].split()
            return bool(sources) and sources[0] == "files"
    return False


class HostsFile:
    """A hosts file's names and addresses, read when it changed (see the module docstring).

    :meth:`lookup` answers from the last read; :meth:`due` says when the file should be looked
    at again; :meth:`refresh` looks (it blocks: a worker thread calls it).
    """

    def __init__(
        self,
        path: str = HOSTS_PATH,
        *,
        check_seconds: float = CHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_seconds = check_seconds
        self._clock = clock
        self._table: dict[str, str] = {}
        self._signature: tuple[int, int, int] | None = None
        self._checked_at: float | None = None

    @classmethod
    def for_this_system(cls) -> HostsFile | None:
        """The system's hosts file when the system reads it before anything else, else None."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            with open(NSSWITCH_PATH, encoding="utf-8", errors="replace") as fh:
                nsswitch = fh.read()
        except OSError:
            return None
        return cls() if files_first(nsswitch) else None

    def due(self) -> bool:
        """Whether the file should be looked at before the next lookup."""
        return self._checked_at is None or self._clock() - self._checked_at >= self._check_seconds

    def refresh(self) -> None:
        """Read the file again if its size or time changed (blocks). An unreadable file
        answers nothing."""
        self._checked_at = self._clock()
        try:
            st = os.stat(self.path)
            signature = (st.st_mtime_ns, st.st_size, st.st_ino)
            if signature == self._signature:
                return
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            self._table, self._signature = {}, None
            return
        self._table, self._signature = parse_hosts(text), signature

    def lookup(self, name: str) -> str | None:
        """The one address the file gives ``name``, or None (ask the system resolver)."""
        if name.endswith("."):
            return None
        return self._table.get(name.lower()) or None
