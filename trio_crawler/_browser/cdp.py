"""A DevTools-protocol connection over Chromium's pipe (``--remote-debugging-pipe``).

One :class:`CdpConnection` per browser process. Two tasks run it (:meth:`CdpConnection.run`):

* the **writer** takes encoded commands from an unbounded channel and writes them to the
  pipe. Commands are queued with ``send_nowait``, so a caller cancelled while its command
  is being written never leaves half a message on the pipe;
* the **reader** reads messages. A reply wakes the caller of :meth:`execute` waiting on
  that command id (a caller that gave up has left; its reply is dropped). An event goes to
  the :class:`CdpSession` of its ``sessionId`` (flat sessions: ``Target.attachToTarget``
  with ``flatten=True``), through that session's unbounded channel, so the reader never
  waits on a slow page; events of unknown sessions are dropped. The channel is unbounded
  but a page's events end with its render (its session closed, its time limit), and the
  page's handlers only append to bounded lists or start bounded work.

When the pipe ends (the browser died, or was killed) or a message is over the size bound,
the connection is **broken**: every waiting :meth:`execute` and every later one raises
:class:`~.model.BrowserCrashed`, every session's channel is closed (its reader sees the
end and raises the same), and :attr:`CdpConnection.broken` is set. Nothing here kills a
process: :mod:`.chromium` owns that.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from .model import BrowserCrashed, CdpError
from .protocol import Event, Framer, MessageTooLarge, Reply, encode_message, parse_message

__all__ = ["CdpConnection", "CdpSession"]

_READ_SIZE = 256 * 1024


@dataclasses.dataclass(slots=True)
class _Waiter:
    method: str
    done: trio.Event = dataclasses.field(default_factory=trio.Event)
    reply: Reply | None = None


class CdpSession:
    """A flat session on one target: commands go with its ``sessionId``; its events arrive
    on :attr:`events` (closed when the session is detached or the connection breaks)."""

    def __init__(self, connection: CdpConnection, session_id: str) -> None:
        self.connection = connection
        self.session_id = session_id
        self._send, self.events = trio.open_memory_channel[Event](math.inf)
        self._children: list[str] = []
        self.closed = False

    async def execute(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return await self.connection.execute(method, params, session_id=self.session_id)

    def adopt(self, child_id: str) -> None:
        """Receive the events of session ``child_id`` too (a worker attached to this page:
        :attr:`Event.session_id` tells them apart)."""
        if not self.closed:
            self.connection._sessions[child_id] = self
            self._children.append(child_id)

    def forget_children(self) -> None:
        """Stop routing the events of the sessions :meth:`adopt` added (their page is gone)."""
        sessions = self.connection._sessions
        for child in self._children:
            if sessions.get(child) is self:
                del sessions[child]
        self._children.clear()

    def close(self) -> None:
        """Stop receiving this session's events (the reader drops later ones)."""
        sessions = self.connection._sessions
        for session_id in (self.session_id, *self._children):
            if sessions.get(session_id) is self:
                del sessions[session_id]
        self.closed = True
        self._send.close()


class CdpConnection:
    """Commands and events over a pair of byte streams (the pipe's two ends)."""

    def __init__(
        self,
        send_stream: trio.abc.SendStream,
        receive_stream: trio.abc.ReceiveStream,
        *,
        exit_grace: float = 0.0,
    ):
        """``exit_grace``: when the browser closes its end of the pipe, how long to wait for
        its owner to break the connection with a better reason (the browser's exit code)."""
        self._out = send_stream
        self._in = receive_stream
        self._exit_grace = exit_grace
        self._ids = itertools.count(1)
        self._waiters: dict[int, _Waiter] = {}
        self._sessions: dict[str, CdpSession] = {}
        self._queue_send, self._queue_receive = trio.open_memory_channel[bytes](math.inf)
        self._browser_events_send, self.browser_events = trio.open_memory_channel[Event](math.inf)
        #: Set once the connection is broken; :attr:`reason` says why.
        self.broken = trio.Event()
        self.reason = ""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read and write until the pipe ends or the caller's scope is cancelled; then the
        connection is broken (for whatever reason) before this returns."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write, name="cdp writer")
                task_status.started()
                await self._read()
                nursery.cancel_scope.cancel()
        finally:
            self.fail(self.reason or "the DevTools connection was closed")

    def fail(self, reason: str) -> None:
        """Break the connection (idempotent): wake every waiter, close every session."""
        if self.broken.is_set():
            return
        self.reason = reason
        self.broken.set()
        for waiter in self._waiters.values():
            waiter.done.set()
        for session in list(self._sessions.values()):
            session.close()
        self._browser_events_send.close()
        self._queue_send.close()

    async def _write(self) -> None:
        try:
            async for data in self._queue_receive:
                await self._out.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.fail(f"the DevTools pipe broke: {exc or type(exc).__name__}")

    async def _read(self) -> None:
        framer = Framer()
        while True:
            try:
                data = await self._in.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self.fail(f"the DevTools pipe broke: {exc or type(exc).__name__}")
                return
            if not data:
                # A browser closes its end as it exits, and whether the pipe or the process
                # is noticed first is a race: give the exit code a moment to win it.
                with trio.move_on_after(self._exit_grace):
                    await self.broken.wait()
                self.fail("the browser closed its DevTools pipe")
                return
            try:
                messages = framer.feed(bytes(data))
            except MessageTooLarge as exc:
                self.fail(str(exc))
                return
            for raw in messages:
                self._dispatch(parse_message(raw))

    def _dispatch(self, message: Reply | Event | None) -> None:
        if isinstance(message, Reply):
            waiter = self._waiters.get(message.id)
            if waiter is not None:
                waiter.reply = message
                waiter.done.set()
        elif isinstance(message, Event):
            if message.session_id is None:
                if message.method == "Target.detachedFromTarget":
                    detached = str(message.params.get("sessionId"))
                    gone = self._sessions.get(detached)
                    if gone is not None and gone.session_id == detached:
                        gone.close()
                self._browser_events_send.send_nowait(message)
                return
            session = self._sessions.get(message.session_id)
            if session is not None:
                session._send.send_nowait(message)

    def session(self, session_id: str) -> CdpSession:
        """Route ``session_id``'s events to a new :class:`CdpSession`. Call it before the
        session's domains are enabled: earlier events are dropped."""
        if self.broken.is_set():
            raise BrowserCrashed(self.reason)
        session = CdpSession(self, session_id)
        self._sessions[session_id] = session
        return session

    async def execute(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        """Send a command and wait for its answer. Raises :class:`CdpError` for an error
        answer, :class:`BrowserCrashed` once the connection is broken."""
        if self.broken.is_set():
            raise BrowserCrashed(self.reason)
        command_id = next(self._ids)
        waiter = self._waiters[command_id] = _Waiter(method)
        try:
            self._queue_send.send_nowait(encode_message(command_id, method, params, session_id))
            await waiter.done.wait()
        finally:
            del self._waiters[command_id]
        reply = waiter.reply
        if reply is None:
            raise BrowserCrashed(self.reason)
        if reply.error is not None:
            raise CdpError(method, *reply.error)
        return reply.result

    async def execute_all(
        self,
        commands: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        session_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Send several commands at once and wait for all their answers (in order): one
        round trip instead of one per command. Raises as :meth:`execute` does, for the
        first command that failed."""
        if self.broken.is_set():
            raise BrowserCrashed(self.reason)
        waiters: list[tuple[int, _Waiter]] = []
        try:
            for method, params in commands:
                command_id = next(self._ids)
                waiter = self._waiters[command_id] = _Waiter(method)
                waiters.append((command_id, waiter))
                self._queue_send.send_nowait(encode_message(command_id, method, params, session_id))
            for _, waiter in waiters:
                await waiter.done.wait()
        finally:
            for command_id, _ in waiters:
                del self._waiters[command_id]
        results = []
        for _, waiter in waiters:
            reply = waiter.reply
            if reply is None:
                raise BrowserCrashed(self.reason)
            if reply.error is not None:
                raise CdpError(waiter.method, *reply.error)
            results.append(reply.result)
        return results

    def send_nowait(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
    ) -> None:
        """Send a command whose answer nobody waits for (closing a page on the way out)."""
        if not self.broken.is_set():
            message = encode_message(next(self._ids), method, params, session_id)
            self._queue_send.send_nowait(message)
