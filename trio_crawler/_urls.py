"""URLs: one parser, the one browsers use; canonical form, fingerprints, scope rules and trap
guards (pure, synchronous).

Theory of operation
-------------------
Every decision about a crawl URL reads it with the WHATWG URL Standard, through ada (the
``ada-url`` package: the parser behind Node.js), and nothing else: a link, a start URL, a
redirect target and a sitemap entry are read exactly as a browser reads them, and the request
sent for a URL is the request a browser sends.

The parser itself (and how it is kept fast) is :mod:`._urlparse`; this module re-exports
:func:`resolve`, :func:`normalize` and :func:`request_parts`.

* :func:`resolve` -- the URL an ``href`` points to on a page (the URL Standard's parser with a
  base), fragment dropped.
* :func:`normalize` -- the URL that is *sent*: the URL Standard's serialisation (lower-case
  scheme and host, the host IDNA-mapped (UTS 46) and punycoded, IPv4 number forms such as
  ``0x7f.1`` written as a dotted quad, IPv6 compressed, the default port dropped, ``\\`` read
  as ``/``, dot segments (``.``, ``%2e``...) resolved, what must be escaped escaped), fragment
  dropped. What is sent, fingerprinted, logged and recorded is this one string.
* :func:`request_parts` -- what a request needs of it: scheme, host as dialled, port, request
  target and Host header, sliced from the normalised URL and nothing else.
* :func:`canonicalize` and :meth:`UrlRules.fingerprint` -- *have we seen it already?* The
  project's de-duplication policy as a thin layer over the normalised URL: query parameters
  sorted (stable, by name), empty ones and tracking parameters (``utm_*``...) removed, an empty
  query removed, percent-escapes of unreserved characters decoded and the others upper-cased
  (reserved ones such as ``%2F`` stay escaped), user info left out (it is never sent). The
  rule that holds everywhere: **the fingerprint is computed from exactly the URL that is
  sent** -- ``fingerprint(u)`` is the fingerprint of ``normalize(u)``, a function of the
  request alone (scheme, Host header, target), and the policy only merges spellings RFC 3986
  calls equivalent, or queries that differ in order and tracking noise.
* :meth:`UrlRules.check` -- *should this URL be followed at all?* ``None`` (yes) or a
  :class:`DropReason`, from stateless checks in a fixed order: scheme, length, parse, scope,
  denied domains, include/exclude patterns (on the normalised URL), then the path trap guards.
  The stateful trap guard (too many query variants of one path) is :class:`QueryVariantGuard`;
  the engine owns one and asks it after ``check``.

The public suffix list is tldextract's bundled snapshot: this module never goes to the network
and never writes to disk.
"""

from __future__ import annotations

import collections
import enum
import functools
import hashlib
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ._exceptions import SettingsError
from ._urlparse import (
    DEFAULT_PORTS,
    FOLLOWED_SCHEMES,
    IPV4_LIKE,
    Parts,
    RequestParts,
    ada_parse,
    normalize,
    parse_checked,
    parse_plain,
    request_parts,
    resolve,
    scheme_of,
    split,
)

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = [
    "DEFAULT_PORTS",
    "DropReason",
    "QueryVariantGuard",
    "RequestParts",
    "UrlRules",
    "canonicalize",
    "fingerprint",
    "normalize",
    "origin",
    "registrable_domain",
    "request_parts",
    "resolve",
]


class DropReason(enum.StrEnum):
    """Why a URL is not followed. Stable strings: they appear in statistics."""

    BAD_SCHEME = "bad_scheme"  # mailto:, javascript:, data:, tel:, ftp:, file: ...
    TOO_LONG = "too_long"  # longer than settings.max_url_length
    UNPARSABLE = "unparsable"  # not a URL by the URL Standard (bad host, bad port...), port 0
    OUT_OF_SCOPE = "out_of_scope"
    DENIED_DOMAIN = "denied_domain"
    EXCLUDED = "excluded"  # fails include_patterns / matches exclude_patterns
    TRAP_REPEATED_SEGMENT = "trap_repeated_segment"
    TRAP_DEEP_PATH = "trap_deep_path"
    TRAP_QUERY_VARIANTS = "trap_query_variants"
    TOO_DEEP = "too_deep"  # link depth > settings.max_depth (decided by the engine)


# --------------------------------------------------------------------------- escapes

_UNRESERVED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"

#: '%xx' in any letter case -> its normal form: the character when unreserved, else '%XX'.
_PCT_NORMAL: dict[str, str] = {}
for _b in range(256):
    _hex = f"{_b:02X}"
    for _hi in {_hex[0], _hex[0].lower()}:
        for _lo in {_hex[1], _hex[1].lower()}:
            _PCT_NORMAL[f"%{_hi}{_lo}"] = chr(_b) if chr(_b) in _UNRESERVED else f"%{_hex}"
del _b, _hex, _hi, _lo

_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")
#: An escape that is not in normal form: lower-case hex, or an unreserved character.
_PCT_TO_FIX = re.compile(
    r"%(?:[a-f]|[0-9A-F][a-f]|3[0-9]|4[1-9A-F]|5[0-9AF]|6[1-9A-F]|7[0-9AE]|2[DE])"
)


def _pct_sub(match: re.Match[str]) -> str:
    return _PCT_NORMAL[match.group()]


def _tidy(text: str) -> str:
    """Escapes in normal form: unreserved characters decoded, the others upper-case hex.
    Nothing else changes (a lone '%' stays: the parser sends it as it is)."""
    if "%" in text and _PCT_TO_FIX.search(text) is not None:
        return _ESCAPE.sub(_pct_sub, text)
    return text


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


def _render(parts: Parts, strip: _Stripper | None, sort_query: bool) -> str:
    """The canonical form: the project's policy over the normalised URL (module docstring)."""
    port = parts.port
    if port is None:
        return parts.url  # mailto:, file:...: no query policy for URLs the crawl never sends
    url = parts.url
    query = parts.query
    path = parts.path
    if "%" in url:
        path = _tidy(path)
        if query:
            query = _tidy(query)
    elif query is None and not parts.userinfo:
        return url  # the common case: nothing to change
    if query:
        query = _clean_query(query, strip, sort_query)
    tail = f"?{query}" if query else ""
    port_text = "" if port == DEFAULT_PORTS[parts.scheme] else f":{port}"
    return f"{parts.scheme}://{parts.host}{port_text}{path}{tail}"


# --------------------------------------------------------------------------- public functions


def _origin_of(parts: Parts) -> str:
    if parts.port is None:
        raise ValueError(f"a {parts.scheme}: URL has no origin")
    return f"{parts.scheme}://{parts.host}:{parts.port}"


def origin(url: str) -> str:
    """``scheme://host:port`` of ``url``: the normalised scheme and host (IPv6 in brackets),
    and the port always explicit (http -> 80, https -> 443).

    Raises :class:`ValueError` when ``url`` is unparsable or has no origin (``mailto:``...).
    """
    return _origin_of(parse_checked(url))


def canonicalize(url: str, *, strip_params: Sequence[str] = (), sort_query: bool = True) -> str:
    """The canonical form of ``url``, for de-duplication only.

    The normalised URL (:func:`normalize`: what is sent), then: user info left out (the
    request never carries it); escapes of unreserved characters decoded and the other
    escapes upper-cased (``%2F`` stays escaped); an empty
    query, empty parameters and parameters named by ``strip_params`` removed (``"utm_*"``
    matches by prefix, other globs by :mod:`fnmatch`, anything else exactly); the parameters
    sorted by name (stable) when ``sort_query``. URLs of schemes without a default port
    (``mailto:``, ``file:``...) are only normalised.

    Raises :class:`ValueError` when ``url`` is not a URL (no scheme, bad host, bad port...).
    """
    if isinstance(strip_params, str):
        strip_params = (strip_params,)
    strip = _compile_strip(tuple(strip_params)) if strip_params else None
    return _render(parse_checked(url), strip, sort_query)


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
    return host.startswith("[") or IPV4_LIKE.match(host) is not None


@functools.lru_cache(maxsize=16_384)
def registrable_domain(host: str) -> str:
    """The registrable domain ("site") of a normalised host: ``www.example.co.uk`` ->
    ``example.co.uk``; ``user.github.io`` -> ``user.github.io`` (private suffixes count).

    IP addresses and ``localhost`` are their own domain; a trailing dot is not counted. A host
    under no known public suffix (``a.corp.internal``) gives its last two labels; a host that
    is a public suffix, itself.
    """
    if host[-1:] == "." and len(host) > 1:
        host = host[:-1]  # example.com. is under example.com's registrable domain
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
    text = domain.strip().removeprefix("*.").strip(".")
    if not text or any(c in text for c in "/?#@\\") or (":" in text and text[0] != "["):
        raise SettingsError(f"bad domain {domain!r}: not a host name")
    try:
        return split(ada_parse(f"http://{text}/")).host
    except ValueError:
        raise SettingsError(f"bad domain {domain!r}: not a host name") from None


def _domain_match(host: str, domains: frozenset[str]) -> bool:
    """``host`` is one of ``domains`` or a subdomain of one (IP addresses: exactly). A
    trailing dot (``example.com.``, another host to a browser) does not escape a match."""
    if not domains:
        return False
    if host[-1:] == ".":
        host = host[:-1]
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
        self._seed_hosts: set[str] = set()
        # the seeds' registrable domains, found when the "domain" scope first asks: building
        # the public suffix list's tree costs 45 ms, which a crawl of another scope never pays
        self._seed_domains: set[str] | None = None
        self._seed_origins_frozen: frozenset[str] = frozenset()
        # check(url) then fingerprint(url) is the common call pattern: parse once.
        self._memo_url: str | None = None
        self._memo_parts: Parts | None = None
        self._cached = functools.lru_cache(maxsize=cache_size)(self._forms)
        # Navigation links repeat on every page of a site: remember the verdicts too.
        self._check_cached = functools.lru_cache(maxsize=cache_size)(self._check)
        for seed in seeds:
            self.add_seed(seed)

    # -- seeds

    def add_seed(self, url: str) -> None:
        """Widen the scope by ``url``'s origin and registrable domain (call it for each start
        URL). Raises :class:`SettingsError` for a URL that is not a parsable http(s) URL."""
        try:
            parts = parse_checked(url)
        except ValueError as exc:
            raise SettingsError(f"bad start URL {url[:200]!r}: {exc}") from None
        if parts.scheme not in FOLLOWED_SCHEMES:
            raise SettingsError(f"start URL must be http or https, not {url[:200]!r}")
        self._seed_origins.add(_origin_of(parts))
        self._seed_hosts.add(parts.host)
        self._seed_domains = None
        self._seed_origins_frozen = frozenset(self._seed_origins)
        self._check_cached.cache_clear()  # the scope changed

    def seed_origins(self) -> frozenset[str]:
        """The origins (``scheme://host:port``) of all seeds."""
        return self._seed_origins_frozen

    # -- the forms of a URL

    def _parts(self, url: str) -> Parts:
        if url == self._memo_url and self._memo_parts is not None:
            return self._memo_parts
        parts = parse_checked(url)
        self._memo_url, self._memo_parts = url, parts
        return parts

    def _forms(self, url: str) -> tuple[str, str, int, str | None]:
        """(normalised URL, canonical form, fingerprint, origin or None)."""
        parts = self._parts(url)
        canonical = _render(parts, self._strip, self._sort_query)
        if parts.port is None:
            return parts.url, canonical, fingerprint(canonical), None
        return (
            parts.url,
            canonical,
            fingerprint(canonical),
            f"{parts.scheme}://{parts.host}:{parts.port}",
        )

    def normalized(self, url: str) -> str:
        """:func:`normalize`: the URL that is sent for ``url``. ValueError when unparsable."""
        return self._cached(url)[0]

    def canonical(self, url: str) -> str:
        """:func:`canonicalize` with the settings' ``strip_params`` and ``sort_query``."""
        return self._cached(url)[1]

    def fingerprint(self, url: str) -> int:
        """The fingerprint of ``url``'s canonical form, the same as that of the URL sent for
        it (:meth:`normalized`). ValueError when unparsable."""
        return self._cached(url)[2]

    def origin(self, url: str) -> str:
        """:func:`origin`, from the same cache as :meth:`fingerprint`."""
        result = self._cached(url)[3]
        if result is None:
            raise ValueError(f"{url[:100]!r} has no origin")
        return result

    # -- decisions

    def _scope_ok(self, parts: Parts) -> bool:
        scope = self._scope
        if scope == "any":
            return True
        if scope == "host":
            if f"{parts.scheme}://{parts.host}:{parts.port}" in self._seed_origins:
                return True
        else:
            domains = self._seed_domains
            if domains is None:
                domains = self._seed_domains = {registrable_domain(h) for h in self._seed_hosts}
            if registrable_domain(parts.host) in domains:
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
            parts.scheme in FOLLOWED_SCHEMES
            and self._scope_ok(parts)
            and not _domain_match(parts.host, self._denied)
        )

    def check(self, url: str) -> DropReason | None:
        """``None`` when ``url`` may be followed, else why not. Stateless; checks in order:
        scheme (http/https only), length (of the URL as given and as sent), parse (port 0 is
        refused here too), scope, denied domains, include/exclude patterns (``re.search`` on
        the normalised URL: :meth:`normalized`), repeated path segments, path depth."""
        return self._check_cached(url)

    def _check(self, url: str) -> DropReason | None:
        parts = parse_plain(url) if len(url) <= self._max_length else None
        if parts is None:
            # Not the common case: judge scheme, length and syntax one by one.
            scheme = scheme_of(url)
            if scheme is not None and scheme not in FOLLOWED_SCHEMES:
                return DropReason.BAD_SCHEME
            if len(url) > self._max_length:
                return DropReason.TOO_LONG
            try:
                parts = split(ada_parse(url).partition("#")[0])
            except ValueError:
                return DropReason.UNPARSABLE
            if parts.scheme not in FOLLOWED_SCHEMES:
                return DropReason.BAD_SCHEME  # java\nscript:..., a scheme the regex missed
            if len(parts.url) > self._max_length:
                return DropReason.TOO_LONG
            if not parts.port:
                return DropReason.UNPARSABLE  # port 0: see request_parts
        self._memo_url, self._memo_parts = url, parts
        if not self._scope_ok(parts):
            return DropReason.OUT_OF_SCOPE
        if self._denied and _domain_match(parts.host, self._denied):
            return DropReason.DENIED_DOMAIN
        if self._include and not any(p.search(parts.url) for p in self._include):
            return DropReason.EXCLUDED
        if self._exclude and any(p.search(parts.url) for p in self._exclude):
            return DropReason.EXCLUDED
        path = parts.path
        return self._path_trap(_tidy(path) if "%" in path else path)

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
            parts = parse_checked(url)
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
