"""The URL parser: the WHATWG URL Standard through ada (the ``ada-url`` package, the parser
behind Node.js), and nothing else (pure, synchronous). :mod:`._urls` builds the crawl's policy
on it (canonical form, fingerprints, scope rules); its docstring says what each function is for.

Speed matters: a crawl checks every link of every page (tens per page). ada takes about a
microsecond a URL. A URL that is already in normal form and plainly shaped -- lower-case
``http(s)``, a lower-case ASCII host name (no ``xn--`` label, not ending in a number) or a plain
dotted quad, no user info, a port that is not the default one, path and query made only of
characters that no WHATWG percent-encode set holds, no dot segment -- is a fixed point of the
parser: one regular expression (:data:`_NORMAL`) recognises and splits it without ada. Link
extraction produces such URLs, so a crawl's URLs mostly take that path; the tests hold it to
ada's answer. :class:`UrlRules` also keeps a bounded cache of canonical forms, since navigation
links repeat on every page of a site.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import ada_url

__all__ = [
    "DEFAULT_PORTS",
    "DOT_SEGMENT",
    "FOLLOWED_SCHEMES",
    "IPV4_LIKE",
    "Parts",
    "RequestParts",
    "ada_parse",
    "normalize",
    "parse_checked",
    "parse_plain",
    "request_parts",
    "resolve",
    "scheme_of",
    "split",
]

#: The special schemes' default ports (the URL Standard).
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
FOLLOWED_SCHEMES = frozenset({"http", "https"})

#: Stripped from both ends before parsing: C0 controls and space (the URL Standard).
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")


# --------------------------------------------------------------------------- the parser


def _usv(text: str) -> bytes:
    """``text`` as UTF-8; a lone surrogate becomes U+FFFD, as in a browser's USVString."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def _bad(url: str) -> ValueError:
    return ValueError(f"not a valid URL: {url[:100]!r}")


def _ada_public(url: str, base: str | None = None) -> str:
    """ada's serialisation of ``url`` (against ``base``), through its public API."""
    data = _usv(url).decode()
    try:
        if base is None:
            return ada_url.normalize_url(data)
        return ada_url.join_url(_usv(base).decode(), data)
    except ValueError:
        raise _bad(url) from None


try:
    # ada's C API as the package binds it (cffi): a third of the cost of its Python wrapper,
    # which looks each getter up by name on every call. _ada_public is the same parse.
    _wrapper: Any = importlib.import_module("ada_url._ada_wrapper")
except ImportError:  # pragma: no cover - another layout of the package
    _wrapper = None


def _ada_direct(url: str, base: str | None = None) -> str:
    """ada's serialisation of ``url`` (against ``base``); ValueError when it does not parse."""
    lib = _wrapper.lib
    data = _usv(url)
    if base is None:
        handle = lib.ada_parse(data, len(data))
    else:
        base_data = _usv(base)
        handle = lib.ada_parse_with_base(data, len(data), base_data, len(base_data))
    try:
        if not lib.ada_is_valid(handle):
            raise _bad(url)
        href = lib.ada_get_href(handle)
        text: str = _wrapper.ffi.unpack(href.data, href.length).decode()
        return text
    finally:
        lib.ada_free(handle)


ada_parse: Callable[..., str] = _ada_public if _wrapper is None else _ada_direct


class Parts(NamedTuple):
    """A parsed URL. ``port`` is explicit when the scheme has a default one."""

    url: str  # the URL Standard's serialisation without fragment: what is sent
    scheme: str  # lower case
    userinfo: str  # as serialised ('user:pass', escaped); '' when absent
    host: str  # ASCII: punycode, dotted-quad IPv4, IPv6 in brackets; '' without authority
    port: int | None  # None only for a URL whose scheme has no default port (mailto:, file:...)
    path: str  # '/' at least when there is a host; everything after 'scheme:' otherwise
    query: str | None  # without the '?'; '' for a bare '?'; None when absent


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
IPV4_LIKE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\Z")

#: A URL the parser leaves as it is (its fragment apart), split in one match. Path: the
#: unreserved and sub-delimiter characters, ':', '@', '/', '%' (an escape or not: the parser
#: never changes a '%'); the query the same with '?' and without "'" (special-query set).
_NORMAL = re.compile(
    r"(https?)://([a-z0-9_-]++(?:\.[a-z0-9_-]++)*+)(?::([1-9][0-9]{0,4}+))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*+)(?:\?([A-Za-z0-9\-._~!$&()*+,;=:@/?%]*+))?(?:#.*)?\Z",
    re.DOTALL,
)
#: A path segment the parser would remove: '.', '..', and their '%2e' spellings.
DOT_SEGMENT = re.compile(r"/(?:\.|%2[eE]){1,2}(?=/|\Z)")


def _number_ended(host: str) -> bool:
    """The URL Standard's "ends in a number": the last label is digits, or 0x and hex."""
    last = host[host.rfind(".") + 1 :]
    return last.isdigit() or (last[:2] == "0x" and all(c in "0123456789abcdef" for c in last[2:]))


def parse_plain(url: str) -> Parts | None:
    """The parts of a URL in plain normal form (see the module docstring), or None."""
    match = _NORMAL.match(url)
    if match is None:
        return None
    scheme, host, port_text, path, query = match.groups()
    if (
        # a last label that is a number makes the host an IPv4 address: a plain dotted quad
        # is its own normal form; 0x7f.1, 2130706433, 01.2.3.4 are not
        (host[-1] <= "9" or ".0x" in host or host[:2] == "0x")
        and _number_ended(host)
        and _DOTTED_QUAD.fullmatch(host) is None
    ) or (
        "xn--" in host  # punycode: the parser checks it
        or (("/." in path or "/%" in path) and DOT_SEGMENT.search(path) is not None)
    ):
        return None
    default = 80 if scheme == "http" else 443
    if port_text is None:
        port = default
    else:
        port = int(port_text)
        if port == default or port > 65535:
            return None
    normal = url if "#" not in url else url[: url.index("#")]
    # tuple.__new__ skips NamedTuple's Python-level __new__: this is the hot path.
    return tuple.__new__(Parts, (normal, scheme, "", host, port, path, query))


def split(url: str) -> Parts:
    """The parts of a URL the parser serialised, fragment already dropped."""
    colon = url.index(":")
    scheme = url[:colon]
    port = DEFAULT_PORTS.get(scheme)
    if port is None:  # mailto:, javascript:, data:, file:, foo://...: no request, no origin
        return Parts(url, scheme, "", "", None, url[colon + 1 :], None)
    # A special URL: 'scheme://', authority, then a path of one '/' at least. A '/', '?' or
    # '#' in the user info, a ':' outside an IPv6 host, a '?' in the path are all escaped.
    start = colon + 3
    slash = url.index("/", start)
    userinfo, _, hostport = url[start:slash].rpartition("@")
    if hostport.startswith("["):
        end = hostport.index("]") + 1
        host, port_text = hostport[:end], hostport[end + 1 :]
    else:
        host, _, port_text = hostport.partition(":")
    if port_text:
        port = int(port_text)
    path, question, query = url[slash:].partition("?")
    return Parts(url, scheme, userinfo, host, port, path, query if question else None)


def _parse(url: str) -> Parts:
    """Parse and split ``url``; ValueError when it is not a URL."""
    parts = parse_plain(url)
    if parts is not None:
        return parts
    return split(ada_parse(url).partition("#")[0])


def parse_checked(url: str) -> Parts:
    if not isinstance(url, str):
        raise TypeError(f"URL must be str, not {type(url).__name__}")
    return _parse(url)


def scheme_of(url: str) -> str | None:
    """The lower-case scheme ``url`` names, or None (a relative reference, or garbage)."""
    text = url.lstrip(_C0_OR_SPACE)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_TAB_NEWLINE)
    match = _SCHEME.match(text)
    return None if match is None else match.group()[:-1].lower()


def resolve(href: str, base: str) -> str:
    """The URL ``href`` points to on a page whose base URL is ``base``, fragment dropped.

    The URL Standard's parser with a base, as a browser follows a link: whitespace at the ends
    stripped and tabs and newlines removed, ``\\`` read as ``/`` in http(s) URLs,
    ``https:x`` relative to an https base, dot segments resolved, the result normalised
    (:func:`normalize`). Any scheme may come out (``mailto:``...). Raises :class:`ValueError`
    when there is no such URL (``http://[::1``, a bad host, a bad port, ``base`` no URL).
    """
    return ada_parse(href, base).partition("#")[0]


def normalize(url: str) -> str:
    """The URL that is sent for the absolute URL ``url``: the URL Standard's serialisation,
    fragment dropped (see the module docstring). Raises :class:`ValueError` for a relative
    reference or anything that is not a URL."""
    parts = parse_plain(url)
    if parts is not None:
        return parts.url
    return ada_parse(url).partition("#")[0]


class RequestParts(NamedTuple):
    """What a request needs of a URL: :func:`request_parts`."""

    url: str
    """The normalised URL (:func:`normalize`): the one string sent, fingerprinted, logged."""
    scheme: str
    """``"http"`` or ``"https"``."""
    host: str
    """The host as dialled: ASCII (punycode), IPv4 as a dotted quad, IPv6 without brackets."""
    port: int | None
    """None when the scheme's default port."""
    target: bytes
    """The request target: path and query exactly as sent."""
    host_header: bytes
    """The Host header: the host (IPv6 in brackets), and the port when not the default."""


def request_parts(url: str) -> RequestParts:
    """The request a browser sends for the http(s) URL ``url`` (fragment dropped).

    Raises :class:`ValueError` when ``url`` is not a URL, not http(s), or names port 0 (a
    "bad port" that browsers refuse to fetch, and that cannot be dialled).
    """
    parts = parse_checked(url)
    scheme = parts.scheme
    if scheme not in FOLLOWED_SCHEMES:
        raise ValueError(f"not an http(s) URL: {url[:100]!r}")
    host = parts.host
    port = parts.port
    if port == DEFAULT_PORTS[scheme]:
        port = None
        host_header = host
    elif port:
        host_header = f"{host}:{port}"
    else:
        raise ValueError(f"port 0 cannot be fetched: {url[:100]!r}")
    query = parts.query
    target = parts.path if query is None else f"{parts.path}?{query}"
    return RequestParts(
        parts.url,
        scheme,
        host[1:-1] if host[:1] == "[" else host,
        port,
        target.encode("ascii"),
        host_header.encode("ascii"),
    )
