"""One Chromium process tree: found, started, watched, measured and killed.

:func:`open_chromium` starts the browser in a new session (its own process group, so a
Ctrl-C at the terminal reaches the crawler, which closes the browser itself) with a
throwaway profile directory, and speaks DevTools to it over two pipes
(``--remote-debugging-pipe``: the browser reads commands on its fd 3 and writes on its fd
4). A pipe rather than ``--remote-debugging-port``: no port that another local process (or
a page) could reach, no file to poll for the port, and if the crawler dies even by
``kill -9`` the browser reads the end of its pipe and exits by itself.

The pipes are put on fds 3 and 4 by a few lines of Python run as the child before it
executes the browser (:data:`_EXEC`), not by a ``preexec_fn`` (unsafe with threads).

On every way out of the ``async with`` (normal exit, error, cancellation) the whole tree is
killed with SIGKILL (the process group, and every descendant found in ``/proc`` in case one
left the group), the browser process is reaped, and the profile directory removed. A
crawler killed outright cannot remove its profile: each profile names its owner's PID, and
the next browser start removes those whose owner is gone (:func:`remove_stale_profiles`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import trio

from .cdp import CdpConnection
from .model import BrowserOptions, BrowserUnavailable, RenderError
from .protocol import chromium_args

__all__ = [
    "CHROMIUM_ENV",
    "Chromium",
    "ProcessTreeUse",
    "find_chromium",
    "open_chromium",
    "process_tree",
    "remove_stale_profiles",
    "tree_use",
]

#: Environment variable naming the Chromium binary.
CHROMIUM_ENV = "TRIO_CRAWLER_CHROMIUM"
_NAMES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")

#: Run by the child: move the pipe ends given as argv[1:3] to fds 3 and 4, then exec argv[3:].
_EXEC = (
    "import fcntl,os,sys\n"
    "a=[fcntl.fcntl(int(f),fcntl.F_DUPFD,10) for f in sys.argv[1:3]]\n"
    "[os.close(int(f)) for f in sys.argv[1:3]]\n"
    "os.dup2(a[0],3);os.dup2(a[1],4)\n"
    "[os.close(f) for f in a]\n"
    "os.execv(sys.argv[3],sys.argv[3:])\n"
)
_STDERR_LINES = 20


def find_chromium(executable: str | None = None) -> str:
    """The binary to run: ``executable``, else ``$TRIO_CRAWLER_CHROMIUM``, else the first of
    ``chromium-headless-shell``, ``chromium``, ``chromium-browser``, ``google-chrome`` on
    ``PATH``. Raises :class:`BrowserUnavailable` (one line) if there is none."""
    named = executable or os.environ.get(CHROMIUM_ENV)
    if named:
        path = shutil.which(named)
        if path is None:
            raise BrowserUnavailable(f"the Chromium binary {named!r} is not an executable")
        return path
    for name in _NAMES:
        path = shutil.which(name)
        if path is not None:
            return path
    raise BrowserUnavailable(
        "no Chromium found: install chromium-headless-shell (or chromium), or name the binary "
        f"in ${CHROMIUM_ENV}"
    )


@dataclass(frozen=True, slots=True)
class ProcessTreeUse:
    """Resources of a process tree: resident and proportional memory (bytes), CPU seconds
    (user + system, including reaped children), number of processes."""

    rss: int
    pss: int
    cpu: float
    processes: int


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def process_tree(root: int, group: int | None = None) -> list[int]:
    """``root`` and its live descendants, plus every process in process group ``group``."""
    parents: dict[int, list[int]] = {}
    members: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return [root]
    for entry in entries:
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        pid, ppid, pgrp = int(entry), int(fields[1]), int(fields[2])
        parents.setdefault(ppid, []).append(pid)
        if group is not None and pgrp == group:
            members.append(pid)
    seen = {root}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    seen.update(members)
    return sorted(seen)


def tree_use(pids: Iterable[int]) -> ProcessTreeUse:
    """Memory and CPU of ``pids`` (processes that have gone count for nothing)."""
    rss = pss = count = 0
    ticks = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is None:
            continue
        count += 1
        # utime stime cutime cstime are fields 14-17 (1-based) of stat: 11-14 after the name
        ticks += sum(int(x) for x in fields[11:15])
        rss += int(fields[21]) * _PAGE
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return ProcessTreeUse(rss=rss, pss=pss or rss, cpu=ticks / _TICKS, processes=count)


def _kill_tree(pid: int) -> None:
    """SIGKILL the process group and every descendant; safe to call twice."""
    pids = process_tree(pid, pid)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    for other in pids:
        if other != os.getpid():
            with contextlib.suppress(OSError):
                os.kill(other, signal.SIGKILL)


class Chromium:
    """A running browser: its process, its DevTools connection, its resources."""

    def __init__(self, process: trio.Process, connection: CdpConnection, profile_dir: str):
        self.process = process
        self.connection = connection
        self.profile_dir = profile_dir
        self._stderr: list[str] = []

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The live processes of the browser's tree."""
        return process_tree(self.pid, self.pid)

    def use(self) -> ProcessTreeUse:
        return tree_use(self.pids())

    def stderr_tail(self) -> str:
        """The browser's last lines on standard error, one line (for error messages)."""
        return " | ".join(line.strip() for line in self._stderr[-3:] if line.strip())[:500]

    def kill(self) -> None:
        _kill_tree(self.pid)

    async def _drain_stderr(self, stream: trio.abc.ReceiveStream) -> None:
        pending = b""
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            async for chunk in stream:
                *lines, pending = (pending + chunk).split(b"\n")
                pending = pending[-4096:]
                for line in lines:
                    self._stderr.append(line[:1000].decode("utf-8", "replace"))
                del self._stderr[:-_STDERR_LINES]

    async def _watch(self) -> None:
        code = await self.process.wait()
        self.connection.fail(f"the browser exited (code {code})")


#: Seconds a closed DevTools pipe waits for the browser's exit code (see CdpConnection).
EXIT_GRACE = 1.0

_PROFILE_PREFIX = "trio-crawler-chromium-"
_OWNER_FILE = "trio-crawler-owner.pid"


def remove_stale_profiles(directory: str | None = None) -> list[str]:
    """Remove the profile directories whose crawler is gone (killed before it could remove
    its own: ``kill -9``, a power cut); return them. A profile names its owner's PID in a
    file; one whose owner is alive, or that names none yet, is left alone."""
    base = directory or tempfile.gettempdir()
    removed: list[str] = []
    try:
        entries = os.listdir(base)
    except OSError:
        return removed
    for entry in entries:
        if not entry.startswith(_PROFILE_PREFIX):
            continue
        path = os.path.join(base, entry)
        try:
            with open(os.path.join(path, _OWNER_FILE)) as f:
                owner = int(f.read().strip() or 0)
        except (OSError, ValueError):
            continue
        if owner > 0 and not _pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _new_profile() -> str:
    """A new profile directory naming this process as its owner (stale ones removed first:
    a few local file operations, once per browser start)."""
    remove_stale_profiles()
    profile = tempfile.mkdtemp(prefix=_PROFILE_PREFIX)
    with open(os.path.join(profile, _OWNER_FILE), "w") as f:
        f.write(str(os.getpid()))
    return profile


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by another user
    return True


def _sink_socket() -> socket.socket:
    """A loopback TCP port bound but never listening: connections to it are refused at
    once. It is the browser's proxy, so a request that escapes interception fails."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def _handshake(
    chromium: Chromium, binary: str, launch_timeout: float
) -> BrowserUnavailable | None:
    """None once the browser answers ``Browser.getVersion``; else why it did not."""
    try:
        with trio.fail_after(launch_timeout):
            await chromium.connection.execute("Browser.getVersion")
    except trio.TooSlowError:
        return BrowserUnavailable(f"{binary} did not answer within {launch_timeout:g}s")
    except RenderError as exc:
        # let the watcher see the exit and the stderr drain finish before saying why
        with trio.move_on_after(1):
            await chromium.process.wait()
            await trio.sleep(0.05)
        said = chromium.stderr_tail()
        return BrowserUnavailable(f"{binary} did not start: {exc}" + (f" ({said})" if said else ""))
    return None


@contextlib.asynccontextmanager
async def open_chromium(options: BrowserOptions) -> AsyncIterator[Chromium]:
    """Start Chromium and connect to it; kill its tree and remove its profile on exit.

    Raises :class:`BrowserUnavailable` when there is no binary, it cannot be started, or it
    does not answer ``Browser.getVersion`` within ``options.launch_timeout``.
    """
    binary = find_chromium(options.executable)
    profile = _new_profile()
    sink = _sink_socket()
    chromium: Chromium | None = None
    try:
        from_parent, to_child = os.pipe()  # the browser reads commands on its fd 3
        from_child, to_parent = os.pipe()  # and writes answers and events on its fd 4
        child_fds = (from_parent, to_parent)
        args = chromium_args(
            options,
            profile_dir=profile,
            sink_proxy=f"http://127.0.0.1:{sink.getsockname()[1]}",
            run_as_root=os.geteuid() == 0,
        )
        command = [sys.executable, "-I", "-S", "-c", _EXEC, *map(str, child_fds), binary, *args]
        try:
            process = await trio.lowlevel.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=child_fds,
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (to_child, from_parent, from_child, to_parent):
                os.close(fd)
            raise BrowserUnavailable(f"cannot start {binary}: {exc}") from None
        for fd in child_fds:
            os.close(fd)
        out_stream = trio.lowlevel.FdStream(to_child)
        in_stream = trio.lowlevel.FdStream(from_child)
        connection = CdpConnection(out_stream, in_stream, exit_grace=EXIT_GRACE)
        chromium = Chromium(process, connection, profile)
        failure: BrowserUnavailable | None = None
        async with trio.open_nursery() as nursery:
            assert process.stderr is not None
            nursery.start_soon(chromium._drain_stderr, process.stderr, name="chromium stderr")
            nursery.start_soon(chromium._watch, name="chromium watch")
            await nursery.start(connection.run)
            failure = await _handshake(chromium, binary, options.launch_timeout)
            if failure is None:
                try:
                    yield chromium
                finally:
                    nursery.cancel_scope.cancel()
            nursery.cancel_scope.cancel()
        if failure is not None:  # raised here, not in the nursery: one plain exception
            raise failure
    finally:
        if chromium is not None:
            chromium.kill()
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                await chromium.process.wait()
            chromium.kill()  # a child that was being forked as the first kill went out
            for stream in (out_stream, in_stream):
                with contextlib.suppress(OSError, trio.ClosedResourceError):
                    stream.close()
        sink.close()
        shutil.rmtree(profile, ignore_errors=True)
