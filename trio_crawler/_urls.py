"""URLs: canonical form, fingerprints, scope rules and trap guards (pure, synchronous).

Theory of operation
-------------------
Every link the crawl meets goes through two questions, in this order:

1. :meth:`UrlRules.check` -- *should this URL be followed at all?*  It answers ``None`` (yes) or a
   :class:`DropReason`.  The checks are stateless and cheap, and run in a fixed order: scheme,
   length, parse, scope, denied domains, include/exclude patterns, then the path trap guards.
   The stateful trap guard (too many query variants of one path) is :class:`QueryVariantGuard`;
   the engine owns one and asks it after ``check``.
2. :meth:`UrlRules.fingerprint` -- *have we seen it already?*  The URL is brought to its
   :func:`canonicalize` form and hashed to 64 bits (:func:`fingerprint`).

The canonical form is for de-duplication only: two URLs with the same canonical form are taken
to name the same resource.  It follows RFC 3986 section 6.2.2 (syntax-based normalisation) plus
a few crawler conventions: the fragment is dropped, an empty query is dropped, query parameters
are sorted (stable, by name) and tracking parameters (``utm_*``...) are removed.

Parsing is RFC 3986 (the regular expression of its appendix B), the same grammar httpx uses
to send the request, so what this module calls the host is the host the fetcher connects to.
Leading and trailing C0 controls and spaces are stripped (as browsers and ``urlsplit`` do); any
other control character or whitespace in the authority makes the URL unparsable, and elsewhere
it is percent-encoded.

Speed matters: a crawl checks every link of every page (tens per page).  The common case -- a
clean ASCII ``http(s)`` URL -- takes a fast path of one regular expression match; everything
else takes the careful path.  Both give the same answer (the tests hold them to it).
:class:`UrlRules` also keeps a bounded cache of canonical forms, since navigation links repeat
on every page of a site.

The public suffix list is tldextract's bundled snapshot: this module never goes to the network
and never writes to disk.
"""

from __future__ import annotations

import collections
import enum
import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ._exceptions import SettingsError

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = [
    "DropReason",
    "QueryVariantGuard",
    "UrlRules",
    "canonicalize",
    "fingerprint",
    "origin",
    "registrable_domain",
]


class DropReason(enum.StrEnum):
    """Why a URL is not followed. Stable strings: they appear in statistics."""

    BAD_SCHEME = "bad_scheme"  # mailto:, javascript:, data:, tel:, ftp:, file: ...
    TOO_LONG = "too_long"  # longer than settings.max_url_length
    UNPARSABLE = "unparsable"  # bad syntax, bad port, empty host, control chars in host ...
    OUT_OF_SCOPE = "out_of_scope"
    DENIED_DOMAIN = "denied_domain"
    EXCLUDED = "excluded"  # fails include_patterns / matches exclude_patterns
    TRAP_REPEATED_SEGMENT = "trap_repeated_segment"
    TRAP_DEEP_PATH = "trap_deep_path"
    TRAP_QUERY_VARIANTS = "trap_query_variants"
    TOO_DEEP = "too_deep"  # link depth > settings.max_depth (decided by the engine)


# --------------------------------------------------------------------------- character classes

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
_SUB_DELIMS = "!$&'()*+,;="
_PATH_SAFE = _UNRESERVED + _SUB_DELIMS + ":@/"
_QUERY_SAFE = _PATH_SAFE + "?"
_USERINFO_SAFE = _UNRESERVED + _SUB_DELIMS + ":"

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_FOLLOWED_SCHEMES = frozenset({"http", "https"})

#: Stripped from both ends before parsing: C0 controls and space (WHATWG, ``urlsplit``).
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def _byte_escape(byte: int) -> str:
    return chr(byte) if chr(byte) in _UNRESERVED else f"%{byte:02X}"


#: '%xx' in any letter case -> its normal form: the character when unreserved, else '%XX'.
_PCT_NORMAL: dict[str, str] = {}
for _b in range(256):
    _hex = f"{_b:02X}"
    for _hi in {_hex[0], _hex[0].lower()}:
        for _lo in {_hex[1], _hex[1].lower()}:
            _PCT_NORMAL[f"%{_hi}{_lo}"] = _byte_escape(_b)
del _b, _hex, _hi, _lo


def _escape(text: str) -> str:
    """Escape every byte of ``text`` (UTF-8), in upper-case hex."""
    # Lone surrogates are not valid text but are valid ``str``: encode them deterministically.
    return "%" + text.encode("utf-8", "surrogatepass").hex("%").upper()


def _pct_pattern(safe: str) -> re.Pattern[str]:
    # A valid escape, or a run of characters that must be escaped, or a lone '%'.
    return re.compile("%[0-9A-Fa-f]{2}|[^" + re.escape(safe) + "%]+|%")


def _pct_sub(match: re.Match[str]) -> str:
    text = match.group()
    return _PCT_NORMAL.get(text) or _escape(text)


_PATH_UNSAFE = _pct_pattern(_PATH_SAFE)
_QUERY_UNSAFE = _pct_pattern(_QUERY_SAFE)
_USERINFO_UNSAFE = _pct_pattern(_USERINFO_SAFE)


#: An escape that is not in normal form: lower-case hex, an unreserved character, a lone '%'.
_PCT_TO_FIX = re.compile(
    r"%(?:[a-f]|[0-9A-F][a-f]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]|2[DE]|(?![0-9A-Fa-f]{2}))"
)


def _normalize_pct(text: str, unsafe: re.Pattern[str]) -> str:
    """Upper-case escapes, decode unreserved characters, escape what must be escaped."""
    return unsafe.sub(_pct_sub, text)


# --------------------------------------------------------------------------- parsing

#: RFC 3986 appendix B, after the scheme: authority, path, query; the fragment is ignored.
_AFTER_SCHEME = re.compile(r"(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?", re.DOTALL)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_IPV4_LIKE = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\Z")
_REG_NAME = re.compile(r"[a-z0-9_.-]+\Z")
_PORT = re.compile(r"[0-9]{1,5}\Z")

#: The common case in one match: http(s), plain ASCII host, optional port, path and query of
#: characters that need no escaping (escapes allowed: they are checked apart).
_FAST = re.compile(
    r"([Hh][Tt][Tt][Pp][Ss]?)://([A-Za-z0-9.-]++)(?::([0-9]{1,5}+))?"
    r"(/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*+)?(?:\?([A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*+))?(?:#.*)?\Z",
    re.DOTALL,
)


class _Parts(NamedTuple):
    """A parsed, normalised URL. ``port`` is explicit when the scheme has a default one."""

    scheme: str  # lower case
    userinfo: str  # normalised; '' when absent
    host: str  # lower-case ASCII (IDNA); IPv6 in brackets; '' for URLs without authority
    port: int | None  # None only for a scheme without a default port and no port given
    path: str  # normalised, dot segments removed; '/' at least when there is a host
    query: str | None  # percent-normalised, not sorted or stripped; None when absent
    opaque: bool  # no authority (mailto:, data:...): ``path`` holds everything after 'scheme:'


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path; empty segments (``//``) are kept."""
    if "." not in path:
        return path
    segments = path.split("/")[1:]
    if "." not in segments and ".." not in segments:
        return path
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _normalize_host(host: str) -> str:
    """Lower-case ASCII host (IDNA for non-ASCII), IPv6 bracketed; ValueError when invalid."""
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"unterminated IPv6 address in {host!r}")
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"invalid IPv6 address {host!r}") from None
        return f"[{address.compressed}]"
    if "%" in host:
        from urllib.parse import unquote

        host = unquote(host, errors="strict")
    host = host.rstrip(".").lower()
    if not host:
        raise ValueError("empty host")
    if not host.isascii():
        if any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in host):
            raise ValueError(f"control character or space in host {host!r}")
        import idna

        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValueError(f"invalid international host name {host!r}: {exc}") from None
    if _IPV4_LIKE.match(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"invalid IPv4 address {host!r}") from None
    elif not _REG_NAME.match(host):
        raise ValueError(f"invalid character in host {host!r}")
    elif host[0] == "." or ".." in host:
        raise ValueError(f"empty label in host {host!r}")
    return host


def _parse_slow(url: str) -> _Parts:
    url = url.strip(_C0_OR_SPACE)
    match = _SCHEME.match(url)
    if match is None:
        raise ValueError(f"not an absolute URL: {url[:100]!r}")
    scheme = match.group()[:-1].lower()
    rest = _AFTER_SCHEME.match(url, match.end())
    assert rest is not None  # every part of the pattern is optional
    authority, path, query = rest.groups()
    if query is not None:
        query = _normalize_pct(query, _QUERY_UNSAFE)
    if authority is None:
        if scheme in _DEFAULT_PORTS:
            raise ValueError(f"no host in {url[:100]!r}")
        # Opaque URL (mailto:, data:, javascript:...): keep it whole, escapes normalised.
        opaque = _normalize_pct(path, _QUERY_UNSAFE)
        return _Parts(scheme, "", "", None, opaque, query, True)

    userinfo, _, hostport = authority.rpartition("@")
    if hostport.startswith("["):
        host, bracket, port_text = hostport.partition("]")
        host += bracket
        if port_text and not port_text.startswith(":"):
            raise ValueError(f"junk after IPv6 address in {authority!r}")
        port_text = port_text[1:]
    else:
        host, _, port_text = hostport.partition(":")
    port = _DEFAULT_PORTS.get(scheme)
    if port_text:
        if not _PORT.match(port_text) or not 0 < int(port_text) <= 65535:
            raise ValueError(f"invalid port {port_text[:20]!r}")
        port = int(port_text)
    if host or scheme in _DEFAULT_PORTS:  # file:///path has no host, and needs none
        host = _normalize_host(host)
    if userinfo:
        userinfo = _normalize_pct(userinfo, _USERINFO_UNSAFE)
    path = _remove_dot_segments(_normalize_pct(path, _PATH_UNSAFE)) or "/"
    return _Parts(scheme, userinfo, host, port, path, query, False)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def _parse_fast(url: str) -> _Parts | None:
    """The parts of a clean ASCII http(s) URL in one match, or None: take the careful path."""
    match = _FAST.match(url)
    if match is None:
        return None
    scheme, host, port_text, path, query = match.groups()
    if (
        host[0] == "."
        or ".." in host
        or host[-1] == "."  # trailing dot
        # ends in a digit: fine when a plain dotted quad (127.0.0.1), else the careful path
        or (host[-1] in "0123456789" and _DOTTED_QUAD.fullmatch(host) is None)
        or (port_text is not None and not 0 < int(port_text) <= 65535)
    ):
        return None
    if path is None:
        path = "/"
    else:
        if "%" in path and _PCT_TO_FIX.search(path):
            path = _normalize_pct(path, _PATH_UNSAFE)
        if "/." in path:
            path = _remove_dot_segments(path)
    if query and "%" in query and _PCT_TO_FIX.search(query):
        query = _normalize_pct(query, _QUERY_UNSAFE)
    scheme = scheme.lower()
    port = _DEFAULT_PORTS[scheme] if port_text is None else int(port_text)
    # tuple.__new__ skips NamedTuple's Python-level __new__: this is the hot path.
    return tuple.__new__(_Parts, (scheme, "", host.lower(), port, path, query, False))


def _parse(url: str) -> _Parts:
    """Split and normalise ``url``; ValueError when it cannot be parsed."""
    return _parse_fast(url) or _parse_slow(url)


def _parse_checked(url: str) -> _Parts:
    if not isinstance(url, str):
        raise TypeError(f"URL must be str, not {type(url).__name__}")
    return _parse(url)


# --------------------------------------------------------------------------- query parameters


class _Stripper(NamedTuple):
    """Which query parameters to drop, compiled for speed."""

    param: re.Pattern[str] | None  # matches the start of a parameter to drop (exact, prefix)
    glob: re.Pattern[str] | None  # matches the name of a parameter to drop (other globs)
    anywhere: re.Pattern[str] | None  # finds a parameter that may be dropped in a whole query

    def drops(self, param: str) -> bool:
        return (self.param is not None and self.param.match(param) is not None) or (
            self.glob is not None and self.glob.match(param.partition("=")[0]) is not None
        )


@functools.lru_cache(maxsize=64)
def _compile_strip(patterns: tuple[str, ...]) -> _Stripper | None:
    """'utm_*' strips by prefix, other globs (``*?[``) by fnmatch, anything else by exact name."""
    import fnmatch

    alternatives: list[str] = []
    globs: list[str] = []
    for pattern in patterns:
        stem = pattern[:-1]
        if pattern.endswith("*") and not any(c in stem for c in "*?["):
            alternatives.append(re.escape(stem))
        elif any(c in pattern for c in "*?["):
            globs.append(fnmatch.translate(pattern))
        else:
            alternatives.append(re.escape(pattern) + r"(?=[=&]|\Z)")
    if not (alternatives or globs):
        return None
    either = "|".join(alternatives)
    return _Stripper(
        param=re.compile(either) if alternatives else None,
        glob=re.compile("|".join(globs)) if globs else None,
        anywhere=None if globs else re.compile(rf"(?:\A|&)(?:{either})"),
    )


def _param_name(param: str) -> str:
    return param.partition("=")[0]


def _clean_query(query: str, strip: _Stripper | None, sort_query: bool) -> str:
    """Drop empty and stripped parameters; sort by name (stable) when ``sort_query``."""
    drop = strip is not None and (strip.anywhere is None or strip.anywhere.search(query))
    if not drop and "&" not in query:
        return query
    params = query.split("&")
    if drop:
        assert strip is not None
        params = [p for p in params if p and not strip.drops(p)]
    elif "" in params:
        params = [p for p in params if p]
    if sort_query and len(params) > 1:
        params.sort(key=_param_name)  # stable: repeated names keep their order
    return "&".join(params)


def _render(parts: _Parts, strip: _Stripper | None, sort_query: bool) -> str:
    query = parts.query
    if query:
        query = _clean_query(query, strip, sort_query)
    tail = f"?{query}" if query else ""
    if parts.opaque:
        return f"{parts.scheme}:{parts.path}{tail}"
    port = parts.port
    port_text = "" if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    userinfo = f"{parts.userinfo}@" if parts.userinfo else ""
    return f"{parts.scheme}://{userinfo}{parts.host}{port_text}{parts.path}{tail}"


# --------------------------------------------------------------------------- public functions


def _origin_of(parts: _Parts) -> str:
    if parts.opaque or parts.port is None:
        raise ValueError(f"a {parts.scheme}: URL has no origin")
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: lower-case scheme, lower-case IDNA host, IPv6 in
    brackets, and the port always explicit (http -> 80, https -> 443).

    Raises :class:`ValueError` when ``url`` is unparsable or has no origin (``mailto:``...).
    """
    return _origin_of(_parse_checked(url))


def canonicalize(url: str, *, strip_params: Sequence[str] = (), sort_query: bool = True) -> str:
    """The canonical form of ``url``, for de-duplication only.

    The fragment is dropped; scheme and host lower-cased, the host IDNA-encoded, the default
    port removed; percent-encoding normalised (upper-case hex, unreserved characters decoded,
    characters that need escaping escaped, reserved ones such as ``%2F`` left escaped); dot
    segments removed (``//`` kept); an empty path becomes ``/``; an empty query, empty
    parameters and parameters named by ``strip_params`` are removed (``"utm_*"`` matches by
    prefix, other globs by :mod:`fnmatch`, anything else exactly); the parameters are sorted by
    name (stable) when ``sort_query``.

    Raises :class:`ValueError` when ``url`` cannot be parsed (no scheme, empty host, bad port,
    control character in the host...).
    """
    if isinstance(strip_params, str):
        strip_params = (strip_params,)
    strip = _compile_strip(tuple(strip_params)) if strip_params else None
    return _render(_parse_checked(url), strip, sort_query)


def fingerprint(canonical_url: str) -> int:
    """A 64-bit unsigned fingerprint of an already canonical URL (BLAKE2b, 8 bytes, big-endian)."""
    digest = hashlib.blake2b(canonical_url.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


_extractor: Callable[[str], object] | None = None


def _tld_extractor() -> Callable[[str], object]:
    global _extractor
    if _extractor is None:
        import tldextract

        # The bundled snapshot only: no network, no disk cache. Private suffixes count, so
        # that two sites on github.io are two registrable domains, not one.
        _extractor = tldextract.TLDExtract(
            suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True
        )
    return _extractor


def _is_ip(host: str) -> bool:
    return host.startswith("[") or _IPV4_LIKE.match(host) is not None


@functools.lru_cache(maxsize=16_384)
def registrable_domain(host: str) -> str:
    """The registrable domain ("site") of a normalised host: ``www.example.co.uk`` ->
    ``example.co.uk``; ``user.github.io`` -> ``user.github.io`` (private suffixes count).

    IP addresses and ``localhost`` are their own domain. A host under no known public suffix
    (``a.corp.internal``) gives its last two labels; a host that is a public suffix, itself.
    """
    if _is_ip(host) or host == "localhost":
        return host
    result = _tld_extractor()(host)
    if hasattr(result, "top_domain_under_public_suffix"):  # tldextract >= 5.3
        domain = str(result.top_domain_under_public_suffix)
    else:
        domain = str(getattr(result, "registered_domain", ""))
    if domain:
        return domain
    if getattr(result, "suffix", "") or host.count(".") < 2:
        return host  # a public suffix itself, or a one- or two-label name
    return ".".join(host.rsplit(".", 2)[-2:])


def _normalize_domain(domain: str) -> str:
    """A domain entry of the settings as a host: '*.Example.COM' -> 'example.com'."""
    text = domain.strip()
    text = text.removeprefix("*.").lstrip(".")
    try:
        return _normalize_host(text)
    except ValueError as exc:
        raise SettingsError(f"bad domain {domain!r}: {exc}") from None


def _domain_match(host: str, domains: frozenset[str]) -> bool:
    """``host`` is one of ``domains`` or a subdomain of one (IP addresses: exactly)."""
    if not domains:
        return False
    if host in domains:
        return True
    if _is_ip(host):
        return False
    dot = host.find(".")
    while dot != -1:
        if host[dot + 1 :] in domains:
            return True
        dot = host.find(".", dot + 1)
    return False


# --------------------------------------------------------------------------- rules


class UrlRules:
    """Everything the crawl decides about one URL, configured once from Settings and the seeds.

    Not thread-safe (nothing in a Trio program needs it to be). ``cache_size`` bounds the cache
    of canonical forms and fingerprints.
    """

    def __init__(
        self, settings: Settings, seeds: Sequence[str], *, cache_size: int = 32_768
    ) -> None:
        self._settings = settings
        self._strip = _compile_strip(tuple(settings.strip_params))
        self._sort_query = settings.sort_query
        self._max_length = settings.max_url_length
        self._scope = settings.scope
        self._allowed = frozenset(_normalize_domain(d) for d in settings.allowed_domains)
        self._denied = frozenset(_normalize_domain(d) for d in settings.denied_domains)
        self._include = tuple(re.compile(p) for p in settings.include_patterns)
        self._exclude = tuple(re.compile(p) for p in settings.exclude_patterns)
        self._max_repeated = settings.max_repeated_segments
        self._max_depth = settings.max_path_depth
        self._seed_origins: set[str] = set()
        self._seed_domains: set[str] = set()
        self._seed_origins_frozen: frozenset[str] = frozenset()
        # check(url) then fingerprint(url) is the common call pattern: parse once.
        self._memo_url: str | None = None
        self._memo_parts: _Parts | None = None
        self._cached = functools.lru_cache(maxsize=cache_size)(self._canonical_and_fingerprint)
        # Navigation links repeat on every page of a site: remember the verdicts too.
        self._check_cached = functools.lru_cache(maxsize=cache_size)(self._check)
        for seed in seeds:
            self.add_seed(seed)

    # -- seeds

    def add_seed(self, url: str) -> None:
        """Widen the scope by ``url``'s origin and registrable domain (call it for each start
        URL). Raises :class:`SettingsError` for a URL that is not a parsable http(s) URL."""
        try:
            parts = _parse_checked(url)
        except ValueError as exc:
            raise SettingsError(f"bad start URL {url[:200]!r}: {exc}") from None
        if parts.scheme not in _FOLLOWED_SCHEMES:
            raise SettingsError(f"start URL must be http or https, not {url[:200]!r}")
        self._seed_origins.add(_origin_of(parts))
        self._seed_domains.add(registrable_domain(parts.host))
        self._seed_origins_frozen = frozenset(self._seed_origins)
        self._check_cached.cache_clear()  # the scope changed

    def seed_origins(self) -> frozenset[str]:
        """The origins (``scheme://host:port``) of all seeds."""
        return self._seed_origins_frozen

    # -- canonical form

    def _parts(self, url: str) -> _Parts:
        if url == self._memo_url and self._memo_parts is not None:
            return self._memo_parts
        parts = _parse_checked(url)
        self._memo_url, self._memo_parts = url, parts
        return parts

    def _canonical_and_fingerprint(self, url: str) -> tuple[str, int, str | None]:
        parts = self._parts(url)
        canonical = _render(parts, self._strip, self._sort_query)
        if parts.opaque or parts.port is None:
            return canonical, fingerprint(canonical), None
        return canonical, fingerprint(canonical), f"{parts.scheme}://{parts.host}:{parts.port}"

    def canonical(self, url: str) -> str:
        """:func:`canonicalize` with the settings' ``strip_params`` and ``sort_query``."""
        return self._cached(url)[0]

    def fingerprint(self, url: str) -> int:
        """The fingerprint of ``url``'s canonical form. ValueError when unparsable."""
        return self._cached(url)[1]

    def origin(self, url: str) -> str:
        """:func:`origin`, from the same cache as :meth:`fingerprint`."""
        result = self._cached(url)[2]
        if result is None:
            raise ValueError(f"{url[:100]!r} has no origin")
        return result

    # -- decisions

    def _scope_ok(self, parts: _Parts) -> bool:
        scope = self._scope
        if scope == "any":
            return True
        if scope == "host":
            if f"{parts.scheme}://{parts.host}:{parts.port}" in self._seed_origins:
                return True
        elif registrable_domain(parts.host) in self._seed_domains:
            return True
        return _domain_match(parts.host, self._allowed)

    def in_scope(self, url: str) -> bool:
        """Whether ``url`` is an http(s) URL inside the crawl's scope and not denied.

        For ``scope="host"``: its origin is a seed's origin (another port is another site), or
        its host is in ``allowed_domains`` (a domain and its subdomains). For ``"domain"``: its
        registrable domain is a seed's, or its host is allowed. For ``"any"``: every URL.
        ``denied_domains`` always win.
        """
        try:
            parts = self._parts(url)
        except ValueError:
            return False
        return (
            parts.scheme in _FOLLOWED_SCHEMES
            and self._scope_ok(parts)
            and not _domain_match(parts.host, self._denied)
        )

    def check(self, url: str) -> DropReason | None:
        """``None`` when ``url`` may be followed, else why not. Stateless; checks in order:
        scheme (http/https only), length, parse, scope, denied domains, include/exclude
        patterns (``re.search`` on the URL as given), repeated path segments, path depth."""
        return self._check_cached(url)

    def _check(self, url: str) -> DropReason | None:
        parts = _parse_fast(url) if len(url) <= self._max_length else None
        if parts is None:
            # Not the common case: judge scheme, length and syntax one by one.
            start = 0
            while start < len(url) and url[start] <= " ":
                start += 1
            scheme = _SCHEME.match(url, start)
            if scheme is None:
                return DropReason.UNPARSABLE  # relative or garbage: no scheme to judge
            if scheme.group()[:-1].lower() not in _FOLLOWED_SCHEMES:
                return DropReason.BAD_SCHEME
            if len(url) > self._max_length:
                return DropReason.TOO_LONG
            try:
                parts = _parse_slow(url)
            except ValueError:
                return DropReason.UNPARSABLE
        self._memo_url, self._memo_parts = url, parts
        if not self._scope_ok(parts):
            return DropReason.OUT_OF_SCOPE
        if self._denied and _domain_match(parts.host, self._denied):
            return DropReason.DENIED_DOMAIN
        if self._include and not any(p.search(url) for p in self._include):
            return DropReason.EXCLUDED
        if self._exclude and any(p.search(url) for p in self._exclude):
            return DropReason.EXCLUDED
        return self._path_trap(parts.path)

    def _path_trap(self, path: str) -> DropReason | None:
        segments = path.split("/")  # segments[0] is the '' before the leading '/'
        if len(segments) <= self._max_repeated and len(segments) <= self._max_depth:
            return None  # fewer segments than either limit
        if segments[-1] == "":
            segments.pop()  # a trailing slash adds no depth
        depth = len(segments) - 1
        if depth > self._max_repeated and len(set(segments)) < len(segments):
            named = [s for s in segments if s]
            most = collections.Counter(named).most_common(1)[0][1] if named else 0
            if most > self._max_repeated:
                return DropReason.TRAP_REPEATED_SEGMENT
        if depth > self._max_depth:
            return DropReason.TRAP_DEEP_PATH
        return None


class QueryVariantGuard:
    """Stateful trap guard: at most ``limit`` distinct query strings per (origin, path).

    Queries are compared with their parameters sorted by name and empty ones dropped, so a
    reordered query counts once; give it canonical URLs (:meth:`UrlRules.canonical`) and
    tracking-tagged variants count once too.

    Memory is bounded: at most ``max_paths`` paths and ``max_entries`` query hashes in all are
    remembered; beyond either, the least recently used path is forgotten (a forgotten trap
    path may yield up to ``limit`` more URLs, no more).
    """

    def __init__(
        self, limit: int, max_paths: int = 100_000, *, max_entries: int = 2_000_000
    ) -> None:
        if limit < 1 or max_paths < 1 or max_entries < 1:
            raise ValueError("limit, max_paths and max_entries must be at least 1")
        self._limit = limit
        self._max_paths = max_paths
        self._max_entries = max(max_entries, limit)
        self._seen: collections.OrderedDict[tuple[str, str], set[int]] = collections.OrderedDict()
        self._entries = 0

    def __len__(self) -> int:
        """How many paths are remembered."""
        return len(self._seen)

    def admit(self, url: str) -> bool:
        """True if ``url`` has no query, or its query was seen before for its path, or fewer
        than ``limit`` queries were; then the query is remembered. False for an unparsable
        URL."""
        if "?" not in url:
            return True
        try:
            parts = _parse_checked(url)
        except ValueError:
            return False
        if not parts.query:
            return True
        key = (f"{parts.scheme}://{parts.host}:{parts.port}", parts.path)
        query_hash = hash(_clean_query(parts.query, None, True))
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = set()
            while len(self._seen) > self._max_paths:
                self._forget_oldest()
        else:
            self._seen.move_to_end(key)
        if query_hash in seen:
            return True
        if len(seen) >= self._limit:
            return False
        seen.add(query_hash)
        self._entries += 1
        while self._entries > self._max_entries:
            self._forget_oldest()
        return True

    def _forget_oldest(self) -> None:
        _, queries = self._seen.popitem(last=False)
        self._entries -= len(queries)
