"""The hosts file read once (``trio_crawler._http.hosts``) and the system resolver's use of it."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from trio_crawler._http import hosts
from trio_crawler._http.dns import SystemResolve
from trio_crawler._http.hosts import HostsFile, files_first, parse_hosts

HOSTS = """\
# a comment line
127.0.0.1\tlocalhost
127.1.0.5   h00005.bench.test   Alias.Bench.Test   # a trailing comment
::1         six.test
10.0.0.1    twice.test
10.0.0.1    twice.test other.test
10.0.0.2    two.test
10.0.0.3    two.test
::1         dual.test
127.0.0.9   dual.test
fe80::1%eth0 zoned.test
not-an-address broken.test
127.0.0.7
   \t
"""


def test_each_name_maps_to_its_one_address_whatever_its_case() -> None:
    table = parse_hosts(HOSTS)
    assert table["localhost"] == "127.0.0.1"
    assert table["h00005.bench.test"] == table["alias.bench.test"] == "127.1.0.5"
    assert table["six.test"] == "::1"
    assert table["twice.test"] == table["other.test"] == "10.0.0.1"  # one address, two lines


def test_names_with_several_addresses_zones_and_broken_lines_are_left_to_the_system() -> None:
    table = parse_hosts(HOSTS)
    assert table["two.test"] == table["dual.test"] == ""
    assert "zoned.test" not in table
    assert "broken.test" not in table
    assert "127.0.0.7" not in table and "#" not in "".join(table)


@pytest.mark.parametrize(
    ("nsswitch", "first"),
    [
        ("hosts:          files mdns4_minimal [NOTFOUND=return] dns\n", True),
        ("passwd: files\n  hosts:files dns # comment\n", True),
        ("hosts: dns files\n", False),
        ("hosts: resolve [!UNAVAIL=return] files myhostname dns\n", False),
        ("# hosts: files\npasswd: files\n", False),
        ("hosts:\n", False),
        ("", False),
    ],
)
def test_the_file_is_used_only_when_the_system_reads_it_first(nsswitch: str, first: bool) -> None:
    assert files_first(nsswitch) is first


def test_the_system_file_is_used_where_nsswitch_puts_files_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "nsswitch.conf"
    monkeypatch.setattr(hosts, "NSSWITCH_PATH", str(conf))
    monkeypatch.setattr(hosts.sys, "platform", "linux")
    assert HostsFile.for_this_system() is None  # no nsswitch.conf: glibc asks DNS first
    conf.write_text("hosts: dns files\n")
    assert HostsFile.for_this_system() is None
    conf.write_text("hosts: files dns\n")
    found = HostsFile.for_this_system()
    assert found is not None and found.path == "/etc/hosts"
    monkeypatch.setattr(hosts.sys, "platform", "darwin")
    assert HostsFile.for_this_system() is None


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_file_is_read_again_when_it_changed_at_most_once_a_check_interval(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hosts"
    path.write_text("127.1.0.1 a.test\n")
    clock = Clock()
    table = HostsFile(str(path), check_seconds=1.0, clock=clock)
    assert table.due() and table.lookup("a.test") is None  # nothing read yet
    table.refresh()
    assert not table.due()
    assert table.lookup("a.test") == table.lookup("A.TEST") == "127.1.0.1"
    assert table.lookup("a.test.") is None  # a rooted name: the system's business
    path.write_text("127.1.0.2 a.test\n127.1.0.3 b.test\n")
    os.utime(path, ns=(1, 1))  # a different time whatever the clock's resolution
    clock.now += 0.5
    assert not table.due()
    clock.now += 0.5
    assert table.due()
    table.refresh()
    assert (table.lookup("a.test"), table.lookup("b.test")) == ("127.1.0.2", "127.1.0.3")
    path.unlink()
    clock.now += 1
    table.refresh()
    assert table.lookup("a.test") is None  # no file: everything goes to the system


class Counting:
    """A getaddrinfo that answers every name with one address and counts its calls."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, host: str, port: int, *args: Any) -> list[Any]:
        self.names.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", port))]


async def test_the_resolver_answers_the_files_names_without_getaddrinfo(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(HOSTS)
    refreshes = 0

    class Table(HostsFile):
        def refresh(self) -> None:
            nonlocal refreshes
            refreshes += 1
            super().refresh()

    getaddrinfo = Counting()
    resolve = SystemResolve(threads=4, hosts_file=Table(str(path)), getaddrinfo=getaddrinfo)
    answers: dict[str, list[str]] = {}

    async def one(name: str) -> None:
        answers[name] = await resolve(name, 80)

    names = ["h00005.bench.test", "ALIAS.bench.test", "six.test", "two.test", "elsewhere.test"]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(one, name)
    assert refreshes == 1  # the lookups that came together waited for one read
    assert answers["h00005.bench.test"] == answers["ALIAS.bench.test"] == ["127.1.0.5"]
    assert answers["six.test"] == ["::1"]
    assert answers["two.test"] == answers["elsewhere.test"] == ["192.0.2.1"]
    assert sorted(getaddrinfo.names) == ["elsewhere.test", "two.test"]


async def test_without_a_hosts_file_every_name_goes_to_getaddrinfo() -> None:
    getaddrinfo = Counting()
    resolve = SystemResolve(threads=2, hosts_file=None, getaddrinfo=getaddrinfo)
    assert await resolve("localhost", 80) == ["192.0.2.1"]
    assert getaddrinfo.names == ["localhost"]
