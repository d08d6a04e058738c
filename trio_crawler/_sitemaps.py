"""Sitemaps (sitemaps.org protocol 0.9): parsing and the crawl's budget. Pure and synchronous.

Theory of operation
-------------------
The engine (when ``Settings.sitemaps`` is on) takes sitemap URLs from robots.txt ``Sitemap:``
lines (:attr:`~trio_crawler._robots.RobotsPolicy.sitemaps`) and from ``/sitemap.xml``, asks
:meth:`SitemapBudget.admit_sitemap` before fetching each one, hands the body to
:func:`parse_sitemap` and gets back a :class:`Sitemap`: page URLs (a ``<urlset>``) and child
sitemaps (a ``<sitemapindex>``), which go through ``admit_sitemap`` in turn. The page URLs go
through :meth:`SitemapBudget.take_urls` and then through the crawl's usual URL rules (scope,
length, trap guards, dedupe) like any link. So the work one site can cause is bounded three
ways: bytes per sitemap (:data:`MAX_SITEMAP_BYTES`, after decompression), sitemaps per crawl
(:data:`DEFAULT_MAX_SITEMAPS`) and URLs per crawl (:data:`DEFAULT_MAX_URLS`).

What :func:`parse_sitemap` accepts, decided by the content, never by a Content-Type or a
file name (servers get both wrong):

* gzip, recognised by its magic bytes, decompressed with an output bound (a 10 GB "gzip
  bomb" costs at most :data:`MAX_SITEMAP_BYTES` of memory); concatenated members are read too;
* XML ``<urlset>`` and ``<sitemapindex>``, with the sitemaps namespace, another one, or none;
  only a ``<loc>`` that is a direct child of ``<url>`` (of ``<sitemap>`` in an index) counts,
  so the ``<image:loc>`` and ``<video:content_loc>`` of the extensions are not taken for pages;
* plain text, one URL per line (anything that does not start with ``<``).

Malformed input never raises: unknown roots, HTML and binary garbage give an empty
:class:`Sitemap`. XML that breaks off or is not well-formed (a raw ``&`` in a URL is the common
case) falls back to a tolerant regular-expression reading of its ``<loc>`` elements.

Why the standard library's expat, and how it is made safe
---------------------------------------------------------
A regex-only reader cannot tell ``<loc>`` in a comment or a ``CDATA`` section from the real
thing, and does not know the document's encoding; a real XML parser does. The danger of a real
parser is the DTD: entity expansion ("billion laughs", quadratic blowup) and external
entities. A sitemap has no use for a DTD, so the parser is expat driven directly
(``xml.parsers.expat``, which is what ``xml.etree`` uses underneath) with a handler on the
*start* of any ``<!DOCTYPE``: the first DTD byte stops the parse and the sitemap is rejected as
a whole, before a single entity can be declared, whatever the document's encoding (a byte
search for ``<!DOCTYPE`` would miss it in UTF-16). Entity and external-entity declaration
handlers refuse too, as a second line. This is the check ``defusedxml`` makes
(``forbid_dtd=True``), in a dozen lines and without a dependency; ``defusedxml`` would be the
choice if the crawler parsed XML in more than this one place. Without a DTD, expat only knows
the five predefined entities and character references, so a document cannot grow on parsing.

The parse streams, 64 KiB at a time, and stops as soon as ``max_urls`` entries are found.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Literal
from urllib.parse import urljoin, urlsplit
from xml.parsers import expat

__all__ = [
    "DEFAULT_MAX_SITEMAPS",
    "DEFAULT_MAX_URLS",
    "MAX_SITEMAP_BYTES",
    "Sitemap",
    "SitemapBudget",
    "parse_sitemap",
    "sitemap_url",
]

#: Sitemaps fetched per crawl, indexes included (``SitemapBudget.max_sitemaps``).
DEFAULT_MAX_SITEMAPS = 50
#: Page URLs taken from sitemaps per crawl, and entries read from one sitemap (the protocol's
#: own limit per file).
DEFAULT_MAX_URLS = 50_000
#: Bytes of one sitemap read after decompression (the protocol's limit: 50 MiB uncompressed).
MAX_SITEMAP_BYTES = 50 * 1024 * 1024
#: A ``<loc>`` longer than this is not a URL anyone can fetch; it is skipped.
MAX_LOC_CHARS = 64 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 64 * 1024
_SCHEMES = frozenset({"http", "https"})

Kind = Literal["urlset", "sitemapindex", "text", "invalid"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sitemap:
    """What one sitemap lists. ``kind`` says what the body was recognised as.

    ``urls`` are the pages of a ``<urlset>`` (or of a text sitemap), ``sitemaps`` the child
    sitemaps of a ``<sitemapindex>``: absolute http(s) URLs, resolved against the sitemap's
    own URL, surrounding whitespace removed, duplicates dropped (first place kept).
    ``truncated`` is True when entries or bytes were left unread because of a bound;
    ``skipped`` counts ``<loc>`` values that were not usable URLs.
    """

    urls: tuple[str, ...] = ()
    sitemaps: tuple[str, ...] = ()
    kind: Kind = "invalid"
    truncated: bool = False
    skipped: int = 0


def sitemap_url(origin: str) -> str:
    """The conventional sitemap of an origin: ``'http://h:8080'`` -> ``'http://h:8080/sitemap.xml'``."""
    parts = urlsplit(origin)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an origin: {origin!r}")
    return f"{parts.scheme}://{parts.netloc}/sitemap.xml"


# --------------------------------------------------------------------------- bytes


def _gunzip(body: bytes, limit: int) -> tuple[bytes, bool]:
    """Decompress gzip (every member) to at most ``limit`` bytes; True when cut short.

    A corrupt or truncated stream gives what was decompressed before the damage.
    """
    out: list[bytes] = []
    size = 0
    data = body
    while data[:2] == _GZIP_MAGIC:
        decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            while data:
                chunk = decomp.decompress(data, limit - size + 1)
                out.append(chunk)
                size += len(chunk)
                if size > limit:
                    return b"".join(out)[:limit], True
                if decomp.eof:
                    break
                data = decomp.unconsumed_tail
                if not chunk and not data:
                    break
        except zlib.error:
            break
        if not decomp.eof:
            break
        data = decomp.unused_data
    return b"".join(out), False


def _body_text(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


# --------------------------------------------------------------------------- collecting


class _Enough(Exception):
    """Raised from a parser handler when ``max_urls`` entries were collected."""


class _Forbidden(Exception):
    """Raised from a parser handler on a DTD or entity declaration."""


class _Collector:
    """Resolves, filters, dedupes and counts entries; raises :class:`_Enough` at the bound."""

    def __init__(self, base_url: str, max_urls: int) -> None:
        self.base_url = base_url
        self.max_urls = max_urls
        self.urls: dict[str, None] = {}
        self.sitemaps: dict[str, None] = {}
        self.skipped = 0
        self.truncated = False

    def add(self, raw: str, *, child_sitemap: bool, resolve: bool = True) -> None:
        text = raw.strip()
        if not text:
            self.skipped += 1
            return
        url = _absolute(text, self.base_url if resolve else "")
        if url is None:
            self.skipped += 1
            return
        into = self.sitemaps if child_sitemap else self.urls
        if url in into:
            return
        if len(self.urls) + len(self.sitemaps) >= self.max_urls:
            self.truncated = True
            raise _Enough
        into[url] = None

    def result(self, kind: Kind, *, truncated: bool = False) -> Sitemap:
        return Sitemap(
            urls=tuple(self.urls),
            sitemaps=tuple(self.sitemaps),
            kind=kind,
            truncated=self.truncated or truncated,
            skipped=self.skipped,
        )


#: The common case, an absolute http(s) URL with a host, needs no urljoin (the hot path).
_ABSOLUTE = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s\x00]+(?:[/?#][^\s\x00]*)?\Z")


def _absolute(text: str, base_url: str) -> str | None:
    if len(text) > MAX_LOC_CHARS:
        return None
    if _ABSOLUTE.match(text):
        return text.split("#", 1)[0]
    if any(c in text for c in "\r\n\t \x00"):
        return None
    try:
        url = urljoin(base_url, text) if base_url else text
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in _SCHEMES or not parts.netloc:
        return None
    return url.split("#", 1)[0]


# --------------------------------------------------------------------------- XML with expat


def _local(name: str) -> str:
    # expat with namespace_separator=" " gives "namespace-uri local"; prefixed names without a
    # declared namespace stay "prefix:local".
    return name.rpartition(" ")[2].rpartition(":")[2]


class _XmlReader:
    """Streams a sitemap through expat; see the module docstring for the safety rules."""

    def __init__(self, collector: _Collector) -> None:
        self.collector = collector
        self.root: str | None = None
        self.stack: list[str] = []
        self.text: list[str] | None = None
        self.text_len = 0
        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.StartDoctypeDeclHandler = self._forbid
        parser.EntityDeclHandler = self._forbid
        parser.UnparsedEntityDeclHandler = self._forbid
        parser.ExternalEntityRefHandler = self._forbid_ref
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._data
        self.parser = parser

    def _forbid(self, *args: object) -> None:
        raise _Forbidden

    def _forbid_ref(self, *args: object) -> int:
        raise _Forbidden

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        local = _local(name)
        if self.root is None:
            self.root = local
            if local not in ("urlset", "sitemapindex"):
                raise _Forbidden  # not a sitemap (HTML, RSS, anything): nothing to read
        if local == "loc" and len(self.stack) == 2 and self._entry_parent():
            self.text = []
            self.text_len = 0
        self.stack.append(local)

    def _entry_parent(self) -> bool:
        parent = self.stack[-1]
        return (self.root == "urlset" and parent == "url") or (
            self.root == "sitemapindex" and parent == "sitemap"
        )

    def _end(self, name: str) -> None:
        self.stack.pop()
        if self.text is not None and len(self.stack) == 2:
            text, self.text = "".join(self.text), None
            self.collector.add(text, child_sitemap=self.root == "sitemapindex")

    def _data(self, data: str) -> None:
        if self.text is not None:
            self.text_len += len(data)
            if self.text_len <= MAX_LOC_CHARS + 1:
                self.text.append(data)

    def feed(self, data: bytes) -> None:
        """Parse ``data``; raises ExpatError, :class:`_Forbidden` or :class:`_Enough`."""
        for start in range(0, len(data), _CHUNK):
            self.parser.Parse(data[start : start + _CHUNK], False)
        self.parser.Parse(b"", True)


# --------------------------------------------------------------------------- tolerant fallback

_ROOT = re.compile(r"<(?:([A-Za-z_][\w.-]*):)?(urlset|sitemapindex)[\s>/]")
_DECLARATION = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_XML_REF = re.compile(r"&(?:(amp|lt|gt|quot|apos)|#([0-9]{1,7})|#[xX]([0-9A-Fa-f]{1,6}));")
_XML_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}


def _unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        named, dec, hexa = match.groups()
        if named:
            return _XML_NAMED[named]
        code = int(dec) if dec else int(hexa, 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else ""

    return _XML_REF.sub(one, text) if "&" in text else text


def _fallback_locs(text: str) -> tuple[Kind, Iterator[str]] | None:
    """The ``<loc>`` values of a malformed sitemap, by regular expression, or None.

    Only ``<loc>`` with the root element's own prefix counts (``<image:loc>`` does not);
    ``CDATA`` sections are unwrapped; comments are removed first.
    """
    text = re.sub(r"<!--.*?(?:-->|\Z)", "", text, flags=re.DOTALL)
    if _DECLARATION.search(text):
        return None  # a DTD: rejected whole, as in the strict path
    root = _ROOT.search(text)
    if root is None:
        return None
    prefix = re.escape(f"{root.group(1)}:") if root.group(1) else ""
    loc = re.compile(rf"<{prefix}loc(?:\s[^>]*)?>(.*?)</{prefix}loc\s*>", re.DOTALL)
    kind: Kind = "urlset" if root.group(2) == "urlset" else "sitemapindex"

    def values() -> Iterator[str]:
        for match in loc.finditer(text, root.start()):
            value = match.group(1).strip()
            if value.startswith("<![CDATA[") and value.endswith("]]>"):
                yield value[9:-3]
            else:
                yield _unescape(value)

    return kind, values()


# --------------------------------------------------------------------------- text sitemaps


def _text_lines(text: str) -> Iterable[str]:
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            yield line


# --------------------------------------------------------------------------- the entry point


def parse_sitemap(
    body: bytes,
    *,
    base_url: str,
    max_urls: int = DEFAULT_MAX_URLS,
    max_bytes: int = MAX_SITEMAP_BYTES,
) -> Sitemap:
    """Read one sitemap body (XML, gzip-compressed XML, or text); never raises on its content.

    ``base_url`` is the sitemap's own URL: relative ``<loc>`` values (a protocol violation,
    but common) are resolved against it. At most ``max_urls`` entries (page URLs and child
    sitemaps together) and ``max_bytes`` bytes after decompression are read; ``truncated``
    tells when a bound cut the sitemap short. A document with a DTD (``<!DOCTYPE``) is
    rejected whole: ``kind="invalid"``, no entries.
    """
    if max_urls < 0 or max_bytes < 0:
        raise ValueError("max_urls and max_bytes must be 0 or more")
    cut = False
    if body[:2] == _GZIP_MAGIC:
        data, cut = _gunzip(body, max_bytes)
    elif len(body) > max_bytes:
        data, cut = body[:max_bytes], True
    else:
        data = body
    collector = _Collector(base_url, max_urls)

    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    xml_like = head.startswith(b"<") or head[:2] in (b"\xff\xfe", b"\xfe\xff")
    if not xml_like:
        if b"\x00" in data[:4096]:
            return Sitemap(truncated=cut)  # binary garbage
        try:
            for line in _text_lines(_body_text(data)):
                # a text sitemap is absolute URLs only: "404" on an error page is not a path
                collector.add(line, child_sitemap=False, resolve=False)
        except _Enough:
            pass
        return collector.result("text", truncated=cut)

    reader = _XmlReader(collector)
    try:
        reader.feed(data)
    except _Enough:
        pass
    except _Forbidden:
        return Sitemap(truncated=cut)
    except (expat.ExpatError, LookupError, ValueError, RecursionError):
        # Not well-formed (a raw '&', an encoding expat lacks, a cut body): read it tolerantly,
        # starting again from nothing so no entry is counted twice.
        if reader.root is not None and reader.root not in ("urlset", "sitemapindex"):
            return Sitemap(truncated=cut)
        found = _fallback_locs(_body_text(data))
        if found is None:
            return Sitemap(truncated=cut)
        kind, values = found
        collector = _Collector(base_url, max_urls)
        try:
            for value in values:
                collector.add(value, child_sitemap=kind == "sitemapindex")
        except _Enough:
            pass
        return collector.result(kind, truncated=cut)
    if reader.root not in ("urlset", "sitemapindex"):
        return Sitemap(truncated=cut)
    kind = "urlset" if reader.root == "urlset" else "sitemapindex"
    return collector.result(kind, truncated=cut)


# --------------------------------------------------------------------------- the budget


class SitemapBudget:
    """How much sitemap work one crawl may do: sitemaps fetched and page URLs taken.

    Pure bookkeeping, owned by the engine. :meth:`admit_sitemap` says whether a sitemap may be
    fetched (it refuses one already admitted, so an index that lists itself, or two indexes
    that list each other, cannot loop) and counts it; :meth:`take_urls` passes on as many page
    URLs as the budget has left. Pass :attr:`remaining_urls` as ``max_urls`` to
    :func:`parse_sitemap` so a sitemap is not read further than it could be used.
    """

    def __init__(
        self, *, max_sitemaps: int = DEFAULT_MAX_SITEMAPS, max_urls: int = DEFAULT_MAX_URLS
    ) -> None:
        if max_sitemaps < 0 or max_urls < 0:
            raise ValueError("max_sitemaps and max_urls must be 0 or more")
        self.max_sitemaps = max_sitemaps
        self.max_urls = max_urls
        self.sitemaps_fetched = 0
        self.sitemaps_refused = 0
        self.urls_taken = 0
        self.urls_refused = 0
        self._admitted: set[str] = set()

    @property
    def remaining_urls(self) -> int:
        return self.max_urls - self.urls_taken

    @property
    def exhausted(self) -> bool:
        """No sitemap may be fetched, or no URL taken, any more."""
        return self.sitemaps_fetched >= self.max_sitemaps or self.urls_taken >= self.max_urls

    def admit_sitemap(self, url: str) -> bool:
        """True (and counted) when ``url`` may be fetched; False when already admitted or over
        budget (counted in :attr:`sitemaps_refused`)."""
        key = url.split("#", 1)[0]
        if key in self._admitted:
            return False
        if self.exhausted:
            self.sitemaps_refused += 1
            return False
        self._admitted.add(key)
        self.sitemaps_fetched += 1
        return True

    def take_urls(self, urls: Iterable[str]) -> tuple[str, ...]:
        """The first of ``urls`` the budget has room for; the rest are counted as refused."""
        taken: list[str] = []
        room = self.remaining_urls
        for url in urls:
            if len(taken) < room:
                taken.append(url)
            else:
                self.urls_refused += 1
        self.urls_taken += len(taken)
        return tuple(taken)
