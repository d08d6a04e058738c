"""TLS: the crawl's client context, made once from the settings, and the sessions it resumes.

A new connection to an origin that was connected before offers that origin's last session
(:class:`TlsSessions`): the server may then skip the certificate exchange and its signature,
and the client the chain's verification. What is resumed was verified for the same name by
the same context; a server that declines starts a full handshake, as without a session.
"""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import Hashable, Iterator
from typing import Any, cast

import httpx

from .._exceptions import SettingsError
from .._settings import Settings


def make_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The crawl's TLS client context; a one-line :class:`SettingsError` for a bad file."""
    if settings.verify_tls:
        ctx = httpx.create_ssl_context(trust_env=settings.trust_env)
    else:
        ctx = httpx.create_ssl_context(verify=False)
    if settings.ca_bundle is not None:
        path = settings.ca_bundle
        with _settings_error("ca_bundle", path):
            if os.path.isdir(path):
                ctx.load_verify_locations(capath=path)
            else:
                ctx.load_verify_locations(cafile=path)
    if settings.client_cert is not None:
        # an encrypted key would make OpenSSL prompt on the terminal: answer "" instead
        with _settings_error("client_cert", settings.client_key or settings.client_cert):
            ctx.load_cert_chain(settings.client_cert, settings.client_key, password=lambda: b"")
    return ctx


@contextlib.contextmanager
def _settings_error(name: str, path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:  # ssl.SSLError included
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        reason = " ".join(str(reason).split())
        raise SettingsError(f"cannot load {name} {path!r}: {reason}") from None


#: Sessions kept, one per origin (most recently used): a few kilobytes each.
TLS_SESSIONS = 4096


class TlsSessions:
    """The last TLS session of each origin (a key: its route), to resume on its next
    connection; at most ``limit``, the least recently kept dropped first."""

    def __init__(self, limit: int = TLS_SESSIONS) -> None:
        self._limit = limit
        self._sessions: dict[Hashable, ssl.SSLSession] = {}
        # the id() of the SSL object each was read from: read once per connection (an id
        # reused by a later connection only delays that origin's next session, never harms)
        self._taken: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, key: Hashable) -> ssl.SSLSession | None:
        return self._sessions.get(key)

    def keep(self, key: Hashable, ssl_object: Any) -> None:
        """Keep the session of ``ssl_object`` (an ``ssl.SSLObject``; anything else is
        ignored) for ``key``, once per connection: called when a response's head was read
        (a TLS 1.3 server's tickets have arrived by then). Reading a session is not cheap
        (OpenSSL copies it): a fifth of a broad HTTPS crawl's CPU when it was read on every
        response."""
        if self._taken.get(key) == id(ssl_object) or self._limit <= 0:
            return
        session = getattr(ssl_object, "session", None)
        if not isinstance(session, ssl.SSLSession):
            return
        sessions = self._sessions
        if sessions.pop(key, None) is None and len(sessions) >= self._limit:
            oldest = next(iter(sessions))
            del sessions[oldest]
            self._taken.pop(oldest, None)
        sessions[key] = session
        self._taken[key] = id(ssl_object)


class _Resuming:
    """The crawl's context for one handshake, offering ``session`` (Trio's ``SSLStream`` asks
    its context only for ``wrap_bio``; anything else is the context's)."""

    def __init__(self, context: ssl.SSLContext, session: ssl.SSLSession) -> None:
        self._context = context
        self._session = session

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self._context.wrap_bio(
            incoming, outgoing, server_side, server_hostname, session=session or self._session
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def resuming(context: ssl.SSLContext, session: ssl.SSLSession | None) -> ssl.SSLContext:
    """``context``, offering ``session`` on the handshake it is used for (if any)."""
    if session is None:
        return context
    return cast(ssl.SSLContext, _Resuming(context, session))
