"""Cookies and credentials, scoped per origin (pure, synchronous).

A crawler visits sites that do not trust each other. Two rules keep their secrets apart:

* :class:`CookieJar` keeps cookies **per origin** (scheme, host, port). A cookie is sent back
  only to the origin that set it: a ``Domain=`` attribute never widens it to sibling hosts
  (stricter than a browser, on purpose), ``Path`` and ``Secure`` are honoured, expired cookies
  are dropped. Memory is bounded per origin and in number of origins. Cookie bytes go back
  as they came, as browsers send them: the fetcher reads header bytes as Latin-1 and writes
  them back as Latin-1, so a UTF-8 cookie is sent as the same UTF-8 bytes. A cookie whose
  name or value holds a control character is ignored (RFC 6265bis, section 5.6), so no
  stored cookie can make a request invalid.
* :class:`Credentials` binds each ``Authorization`` value to the hosts it was given for. The
  engine asks for it per request, so a redirect to another host (each hop is a request of its
  own) never carries it; :func:`strip_sensitive` removes such headers from a request that
  follows a redirect off its origin.
"""

from __future__ import annotations

import base64
import email.utils
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ._exceptions import SettingsError

#: Headers that must never follow a redirect to another origin.
SENSITIVE_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


# RFC 6265's whitespace: only these are trimmed (str.strip() would also take U+00A0 and
# U+0085, which are the second bytes of UTF-8 characters read as Latin-1: "à" is C3 A0)
_WSP = " \t"
# control characters but the tab: a cookie holding one is ignored
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]").search


def strip_sensitive(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SENSITIVE_HEADERS}


class _Cookie:
    __slots__ = ("expires", "name", "path", "secure", "value")

    def __init__(self, name: str, value: str, path: str, secure: bool, expires: float | None):
        self.name = name
        self.value = value
        self.path = path
        self.secure = secure
        self.expires = expires


def _default_path(request_path: str) -> str:
    if not request_path.startswith("/") or request_path.count("/") <= 1:
        return "/"
    return request_path[: request_path.rindex("/")]


def _path_matches(request_path: str, cookie_path: str) -> bool:
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def parse_set_cookie(value: str, *, request_path: str, now: float) -> _Cookie | None:
    """One ``Set-Cookie`` header value (RFC 6265 §5.2, leniently); None when unusable."""
    parts = value.split(";")
    name, sep, cookie_value = parts[0].partition("=")
    name = name.strip(_WSP)
    if not sep or not name or len(value) > 8192:
        return None
    cookie_value = cookie_value.strip(_WSP)
    if _CONTROL(name) or _CONTROL(cookie_value):
        return None
    path = _default_path(request_path)
    secure = False
    expires: float | None = None
    max_age_seen = False
    for attribute in parts[1:]:
        key, _, raw = attribute.partition("=")
        key = key.strip(_WSP).lower()
        raw = raw.strip(_WSP)
        if key == "path" and raw.startswith("/"):
            path = raw
        elif key == "secure":
            secure = True
        elif key == "max-age":
            try:
                expires = now + int(raw)
                max_age_seen = True
            except ValueError:
                continue
        elif key == "expires" and not max_age_seen:
            try:
                expires = email.utils.parsedate_to_datetime(raw).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
    return _Cookie(name, cookie_value, path, secure, expires)


class CookieJar:
    """Cookies per origin; see the module docstring for the rules."""

    def __init__(self, *, max_per_origin: int = 50, max_origins: int = 10_000) -> None:
        self._max_per_origin = max_per_origin
        self._max_origins = max_origins
        self._jars: OrderedDict[str, dict[tuple[str, str], _Cookie]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(jar) for jar in self._jars.values())

    def store(self, url: str, set_cookie: Iterable[str], *, now: float) -> None:
        """Keep the cookies a response from ``url`` set."""
        parts = urlsplit(url)
        origin = _origin_of(parts.scheme, parts.hostname, parts.port)
        jar = self._jars.get(origin)
        for value in set_cookie:
            cookie = parse_set_cookie(value, request_path=parts.path or "/", now=now)
            if cookie is None:
                continue
            if jar is None:
                jar = self._jars[origin] = {}
                while len(self._jars) > self._max_origins:
                    self._jars.popitem(last=False)
            key = (cookie.name, cookie.path)
            if cookie.expires is not None and cookie.expires <= now:
                jar.pop(key, None)  # a deletion
                continue
            jar[key] = cookie
            if len(jar) > self._max_per_origin:
                jar.pop(next(iter(jar)))
        if jar is not None:
            self._jars.move_to_end(origin)

    def header(self, url: str, *, now: float) -> str | None:
        """The ``Cookie`` header for a request to ``url``, or None."""
        if not self._jars:
            return None  # no site has set a cookie: the common case, and per request
        parts = urlsplit(url)
        jar = self._jars.get(_origin_of(parts.scheme, parts.hostname, parts.port))
        if not jar:
            return None
        path = parts.path or "/"
        secure = parts.scheme == "https"
        pairs = []
        for key, cookie in list(jar.items()):
            if cookie.expires is not None and cookie.expires <= now:
                del jar[key]
                continue
            if cookie.secure and not secure:
                continue
            if _path_matches(path, cookie.path):
                pairs.append((len(cookie.path), f"{cookie.name}={cookie.value}"))
        if not pairs:
            return None
        pairs.sort(key=lambda p: -p[0])
        return "; ".join(text for _, text in pairs)


def _origin_of(scheme: str, host: str | None, port: int | None) -> str:
    scheme = scheme.lower()
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{(host or '').lower()}:{port or default}"


class Credentials:
    """``Authorization`` values bound to hosts (``host`` or ``host:port``), never sent elsewhere.

    Build from ``("host", "user:password")`` pairs for Basic and ``("host", "bearer:TOKEN")``
    for Bearer, as the command line's ``--auth HOST=USER:PASSWORD`` and
    ``--auth HOST=bearer:TOKEN`` give them.
    """

    def __init__(self, entries: Iterable[tuple[str, str]] = ()) -> None:
        self._by_host: dict[str, str] = {}
        for host, secret in entries:
            self.add(host, secret)

    def __bool__(self) -> bool:
        return bool(self._by_host)

    def add(self, host: str, secret: str) -> None:
        host = host.strip().lower()
        if not host or "/" in host:
            raise SettingsError(f"credentials need a host name, not {host!r}")
        if secret.lower().startswith("bearer:"):
            value = "Bearer " + secret.split(":", 1)[1]
        elif ":" in secret:
            value = "Basic " + base64.b64encode(secret.encode()).decode("ascii")
        else:
            raise SettingsError(f"credentials for {host} must be USER:PASSWORD or bearer:TOKEN")
        self._by_host[host] = value

    def header(self, url: str) -> str | None:
        """The ``Authorization`` value for ``url``'s host (exact host, or host:port), or None."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.port is not None:
            found = self._by_host.get(f"{host}:{parts.port}")
            if found is not None:
                return found
        return self._by_host.get(host)
