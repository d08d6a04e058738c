"""Failure kinds of the HTTP layers' errors, decided by the errors' types.

Each floor raises httpcore's error types (the proxy pools do too) or a subclass that says
more (:class:`~.http11.PeerClosed`, :class:`~.backend.TlsFailed`); this module maps them to
a :class:`~trio_crawler.FailureKind` and a one-line message for :meth:`Fetcher.fetch`.
"""

from __future__ import annotations

import httpcore
import httpx
import trio

from .._exceptions import FailureKind
from .backend import TlsFailed, tls_cause
from .http11 import PeerClosed


def message_of(exc: BaseException) -> str:
    """A one-line message for ``exc``; for a TLS failure, what the TLS library said."""
    tls = tls_cause(exc)
    if tls is not None and tls is not exc:
        text = getattr(tls, "verify_message", None) or getattr(tls, "reason", None) or tls
        return f"{type(exc).__name__}: TLS {text}"
    return f"{type(exc).__name__}: {exc}".strip()


def kind_of(exc: BaseException) -> FailureKind:
    """The failure kind of an error raised below the fetcher, by its type alone."""
    if isinstance(exc, (httpcore.TimeoutException, httpx.TimeoutException, trio.TooSlowError)):
        return FailureKind.TIMEOUT
    if isinstance(exc, (httpcore.ProxyError, httpx.ProxyError)):
        return FailureKind.PROXY
    if isinstance(exc, TlsFailed) or tls_cause(exc) is not None:
        return FailureKind.TLS
    if isinstance(exc, (httpcore.ConnectError, httpx.ConnectError)):
        return FailureKind.CONNECT
    if isinstance(exc, PeerClosed):
        return FailureKind.RESET
    if isinstance(exc, (httpcore.ProtocolError, httpx.ProtocolError, httpx.DecodingError)):
        return FailureKind.PROTOCOL
    if isinstance(exc, (httpcore.ReadError, httpcore.WriteError, httpx.ReadError)):
        return FailureKind.RESET
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol, httpcore.UnsupportedProtocol)):
        return FailureKind.BAD_URL
    if isinstance(exc, (OSError, trio.BrokenResourceError)):
        return FailureKind.CONNECT
    return FailureKind.OTHER
