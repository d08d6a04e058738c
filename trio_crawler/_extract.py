"""What a fetched body is and what it links to: media type, HTML sniffing, decoding, links.

Pure and synchronous: nothing here awaits, touches a socket or imports Trio. The engine calls
these functions on every response, so they are written for speed as well as for correctness.

Theory of operation
-------------------
* :func:`media_type` and the charset parameter come from one cached parse of the
  ``Content-Type`` header (the same few header values repeat across a whole crawl).
* :func:`sniff_is_html` trusts an explicit HTML type unless the body opens with a binary
  signature, and sniffs the start of the body when the type is missing or generic, in the
  spirit of the WHATWG MIME Sniffing Standard.
* :func:`decode_body` follows the order browsers use: a byte order mark, then the header
  charset, then a ``<meta>`` charset found by a bytes regex in the first 1024 bytes, then
  UTF-8 if the body is valid UTF-8, else windows-1252. Charset labels go through the WHATWG
  label table (so ``iso-8859-1`` decodes as windows-1252 and ``shift_jis`` as Windows-31J,
  as browsers do). It never raises.
* :func:`extract` makes one CSS query for the links (``a[href], area[href]``) and the
  document's ``<base>``, ``<meta name>`` and ``<title>``, then resolves each ``href`` as a
  browser does, with the URL Standard's parser (:func:`~trio_crawler._urls.resolve`, ada): a
  link is the normalised URL that will be sent. :class:`_Resolver`'s fast paths (absolute
  ``http(s)://`` URLs already in normal form, ``//host`` hrefs, ``/path``, ``dir/page`` and
  ``../page`` hrefs of plain characters) build the URL by concatenation instead of parsing
  (about a microsecond a call). Each fast path is taken only for inputs where it provably gives
  the same string as the reference :func:`_resolve_slow`; the tests check that on a corpus.
"""

from __future__ import annotations

import codecs
import dataclasses
import enum
import functools
import itertools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from ._graph import ANCHOR_MAX
from ._urlparse import DOT_SEGMENT, parse_plain, resolve

if TYPE_CHECKING:
    from selectolax.lexbor import LexborHTMLParser, LexborNode

__all__ = [
    "Extracted",
    "Link",
    "decode_body",
    "extract",
    "media_type",
    "robots_directives",
    "sniff_is_html",
]

# ------------------------------------------------------------------ Content-Type

_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9a-z]+"
_MEDIA_TYPE_RE: Final = re.compile(rf"{_TOKEN_CHARS}/{_TOKEN_CHARS}")
_CHARSET_PARAM_RE: Final = re.compile(r";\s*charset\s*=\s*(\"[^\"]*\"|'[^']*'|[^;\s]*)", re.I)


@functools.lru_cache(maxsize=512)
def _parse_content_type(header: str) -> tuple[str, str | None]:
    """``(media type, charset label or None)`` of a Content-Type value.

    Repeated headers joined with commas are read as browsers do: the last valid type wins,
    and a charset carries over from an earlier value of the same type.
    """
    mtype = ""
    charset: str | None = None
    for piece in header.split(",") if "," in header else (header,):
        essence, _, params = piece.partition(";")
        essence = essence.strip().lower()
        if not _MEDIA_TYPE_RE.fullmatch(essence) or essence == "*/*":
            continue
        match = _CHARSET_PARAM_RE.search(";" + params) if params else None
        label = match.group(1).strip("\"' \t").lower() if match else None
        if essence != mtype:
            charset = label or None
        elif label:
            charset = label
        mtype = essence
    return mtype, charset


def media_type(content_type_header: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters.

    ``'text/html; charset=utf-8'`` gives ``'text/html'``; ``None``, empty or unparsable
    headers give ``''``.
    """
    if not content_type_header:
        return ""
    return _parse_content_type(content_type_header)[0]


# ------------------------------------------------------------------ sniffing

_HTML_TYPES: Final = frozenset({"text/html", "application/xhtml+xml"})
_SNIFFABLE_TYPES: Final = frozenset(
    {"", "application/octet-stream", "text/plain", "unknown/unknown", "application/unknown"}
)
_BINARY_SIGNATURES: Final = (
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"\xff\xd8\xff",  # JPEG
    b"%PDF-",
    b"PK\x03\x04",  # ZIP (and docx, jar, epub...)
    b"PK\x05\x06",  # empty ZIP
    b"\x1f\x8b\x08",  # gzip
    b"Rar!\x1a\x07",
    b"7z\xbc\xaf\x27\x1c",
    b"\x28\xb5\x2f\xfd",  # zstd
    b"\x7fELF",
    b"OggS\x00",
    b"fLaC",
    b"ID3",  # MP3 with an ID3 tag
)
_WHITESPACE_BYTES: Final = b"\t\n\x0c\r "
_HTML_START_RE: Final = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|title|script|style|iframe|h1|div|font|table|a|b"
    rb"|br|p|meta|link|span|ul|ol|form|img|section|nav|header|main|article|center)[\s/>]"
    rb"|<!--",
    re.I,
)
_XHTML_IN_PROLOG_RE: Final = re.compile(rb"<!doctype\s+html|<html[\s>]", re.I)


def _looks_binary(head: bytes, utf16: bool) -> bool:
    """True when ``head`` (the first 512 bytes) is clearly not text."""
    if head.startswith(_BINARY_SIGNATURES):
        return True
    if head.startswith(b"RIFF") and head[8:12] in (b"WEBP", b"WAVE", b"AVI "):
        return True
    return not utf16 and b"\x00" in head


def sniff_is_html(content_type_header: str | None, body: bytes) -> bool:
    """True when ``body`` should be parsed as HTML.

    ``text/html`` and ``application/xhtml+xml`` are HTML unless the body opens with a binary
    signature (PNG, GIF, JPEG, PDF, ZIP, gzip, WebP...) or has NUL bytes in its first 512
    bytes (a UTF-16 body, known by its BOM or its declared charset, may have them). A missing,
    empty, ``application/octet-stream`` or ``text/plain`` type is decided by the start of the
    body: after a BOM and whitespace, a tag such as ``<!doctype html``, ``<html``, ``<head``,
    ``<body``, ``<title``, ``<a ``, ``<div``, ``<p>`` or a comment ``<!--``. Any other explicit
    type (``application/json``, ``image/png``...) is not HTML.
    """
    if content_type_header:
        mtype, charset = _parse_content_type(content_type_header)
    else:
        mtype, charset = "", None
    if mtype not in _HTML_TYPES and mtype not in _SNIFFABLE_TYPES:
        return False
    head = body[:512]
    utf16_bom = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    utf16 = utf16_bom or (charset is not None and "16" in charset)
    if _looks_binary(head, utf16):
        return False
    if mtype in _HTML_TYPES:
        return True
    if utf16_bom:
        codec = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
        head = head[2:].decode(codec, "replace").encode("ascii", "replace")
    elif head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    head = head.lstrip(_WHITESPACE_BYTES)
    if _HTML_START_RE.match(head):
        return True
    # An XML prolog in front of an XHTML document.
    return head[:5].lower() == b"<?xml" and _XHTML_IN_PROLOG_RE.search(head) is not None


# ------------------------------------------------------------------ decoding

# The WHATWG Encoding Standard's labels, by the Python codec that decodes them as browsers do.
# (The "replacement" and "x-user-defined" encodings are left to Python's own codecs, if any.)
_WHATWG_LABELS: Final[dict[str, str]] = {
    "utf-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "cp866": "866 cp866 csibm866 ibm866",
    "iso8859_2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 "
    "iso_8859-2:1987 l2 latin2",
    "iso8859_3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 "
    "iso_8859-3:1988 l3 latin3",
    "iso8859_4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 "
    "iso_8859-4:1988 l4 latin4",
    "iso8859_5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 "
    "iso_8859-5 iso_8859-5:1988",
    "iso8859_6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
    "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "iso8859_7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 "
    "iso8859-7 iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "iso8859_8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
    "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual csiso88598i iso-8859-8-i logical",
    "iso8859_10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "iso8859_13": "iso-8859-13 iso8859-13 iso885913",
    "iso8859_14": "iso-8859-14 iso8859-14 iso885914",
    "iso8859_15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "iso8859_16": "iso-8859-16",
    "koi8_r": "cskoi8r koi koi8 koi8-r koi8_r",
    "koi8_u": "koi8-ru koi8-u",
    "mac_roman": "csmacintosh mac macintosh x-mac-roman",
    "cp874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "cp1250": "cp1250 windows-1250 x-cp1250",
    "cp1251": "cp1251 windows-1251 x-cp1251",
    "cp1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
    "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "cp1253": "cp1253 windows-1253 x-cp1253",
    "cp1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
    "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    "cp1255": "cp1255 windows-1255 x-cp1255",
    "cp1256": "cp1256 windows-1256 x-cp1256",
    "cp1257": "cp1257 windows-1257 x-cp1257",
    "cp1258": "cp1258 windows-1258 x-cp1258",
    "mac_cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "gb18030": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk "
    "gb18030",
    "big5hkscs": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "euc_jp": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "iso2022_jp": "csiso2022jp iso-2022-jp",
    "cp932": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "cp949": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
    "ksc5601 ksc_5601 windows-949",
    "utf-16-be": "unicodefffe utf-16be",
    "utf-16-le": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
}
_LABEL_TO_CODEC: Final[dict[str, str]] = {
    label: codecs.lookup(codec).name
    for codec, labels in _WHATWG_LABELS.items()
    for label in labels.split()
}
# Python codecs that are not safe or not meaningful for a web page, even with errors="replace".
_REFUSED_CODECS: Final = frozenset(
    {"undefined", "idna", "punycode", "unicode-escape", "raw-unicode-escape", "utf-7", "mbcs"}
)
# Python names whose WHATWG equivalent is windows-1252.
_AS_WINDOWS_1252: Final = frozenset({"ascii", "iso8859-1", "latin-1", "latin_1"})
_LABEL_RE: Final = re.compile(r"[a-z0-9._:+\-]{1,40}")
_UTF8: Final = "utf-8"
_CP1252: Final = "cp1252"
_META_CHARSET_RE: Final = re.compile(
    rb"<meta\s[^>]*?charset\s*=\s*[\"']?\s*([a-z0-9._:+\-]{1,40})", re.I
)


@functools.lru_cache(maxsize=256)
def _codec_for(label: str) -> str | None:
    """The Python codec name that decodes a charset ``label`` as a browser would, or None."""
    label = label.strip("\t\n\x0c\r \"'").lower()
    found = _LABEL_TO_CODEC.get(label)
    if found is not None:
        return found
    if not _LABEL_RE.fullmatch(label):
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    if info.name in _AS_WINDOWS_1252:
        return _CP1252
    return info.name


def _decode(body: bytes, codec: str) -> str | None:
    try:
        return body.decode(codec, "replace")
    except Exception:  # a codec that fails even with errors="replace": try the next source
        return None


def decode_body(body: bytes, content_type_header: str | None) -> tuple[str, str]:
    """Decode an HTML or text body: ``(text, name of the Python codec used)``.

    The encoding comes from, in order: a byte order mark (UTF-8, UTF-16LE/BE; browsers let it
    override the header), the ``charset`` of the Content-Type header, a ``<meta charset>`` or
    ``<meta http-equiv=Content-Type content="...; charset=...">`` in the first 1024 bytes, and
    finally UTF-8 when the body is valid UTF-8, else windows-1252 (``cp1252``). Labels are read
    through the WHATWG table: ``latin1``, ``iso-8859-1`` and ``us-ascii`` decode as cp1252,
    ``shift_jis`` as cp932, ``gb2312`` as gb18030. Unknown or unusable labels are ignored.
    Undecodable bytes become U+FFFD. Never raises.
    """
    if body[:3] == b"\xef\xbb\xbf":
        return body[3:].decode(_UTF8, "replace"), _UTF8
    if body[:2] == b"\xff\xfe":
        return body[2:].decode("utf-16-le", "replace"), "utf-16-le"
    if body[:2] == b"\xfe\xff":
        return body[2:].decode("utf-16-be", "replace"), "utf-16-be"

    if content_type_header:
        label = _parse_content_type(content_type_header)[1]
        if label:
            codec = _codec_for(label)
            if codec is not None:
                text = _decode(body, codec)
                if text is not None:
                    return text, codec

    match = _META_CHARSET_RE.search(body, 0, 1024)
    if match is not None:
        codec = _codec_for(match.group(1).decode("ascii"))
        if codec is not None:
            if codec.startswith("utf-16"):
                # An ASCII-compatible document cannot be UTF-16: browsers read it as UTF-8.
                codec = _UTF8
            text = _decode(body, codec)
            if text is not None:
                return text, codec

    try:
        return body.decode(_UTF8), _UTF8
    except UnicodeDecodeError as exc:
        if (
            exc.start >= len(body) - 3
            and exc.reason == "unexpected end of data"
            and not body[: exc.start].isascii()
        ):
            # UTF-8 (non-ASCII text decoded fine) cut short by the body size cap: keep UTF-8,
            # replace the torn tail.
            return body.decode(_UTF8, "replace"), _UTF8
    return body.decode(_CP1252, "replace"), _CP1252


# ------------------------------------------------------------------ robots directives

_DIRECTIVE_RE: Final = re.compile(r"[a-z][a-z0-9_\-]*")
# Directives that carry a value after a colon; their colon does not introduce a user agent.
_VALUED_DIRECTIVES: Final = frozenset(
    {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
)


def _add_directives(text: str, into: set[str]) -> None:
    """Add the bare directives of ``text`` (one comma-separated piece) to ``into``."""
    for word in text.lower().replace(";", " ").split():
        if word == "none":
            into.add("noindex")
            into.add("nofollow")
        elif _DIRECTIVE_RE.fullmatch(word):
            into.add(word)


def _agent_token(user_agent: str) -> str:
    """``'trio-crawler/0.1 (+https://...)'`` -> ``'trio-crawler'``; a bare token is kept."""
    words = user_agent.strip().lower().split()
    return words[0].partition("/")[0] if words else ""


def _meta_directives(content: str) -> set[str]:
    found: set[str] = set()
    for piece in content.split(","):
        if ":" not in piece:  # "max-snippet: 20" and the like carry values, not flags
            _add_directives(piece, found)
    return found


def robots_directives(values: Iterable[str], user_agent_token: str) -> frozenset[str]:
    """The directives of ``X-Robots-Tag`` header values that apply to ``user_agent_token``.

    Pass each header line separately (``headers.get_list("x-robots-tag")``): a
    ``"googlebot: noindex, nofollow"`` prefix applies to the rest of its line. Directives are
    lower-cased; ``none`` becomes ``noindex`` and ``nofollow``. A prefix applies when it equals
    the agent token, case-insensitively (a full User-Agent string is reduced to its first
    product token). Valued directives (``unavailable_after: ...``, ``max-snippet: 20``) and
    anything that is not a plain word are ignored.
    """
    token = _agent_token(user_agent_token)
    found: set[str] = set()
    for value in values:
        applies = True
        for piece in value.split(","):
            if ":" in piece:
                name, _, rest = piece.partition(":")
                name = name.strip().lower()
                if name in _VALUED_DIRECTIVES or ":" in rest:
                    continue
                if not _DIRECTIVE_RE.fullmatch(name) and name != "*":
                    continue  # the tail of a date or other noise
                applies = name == token or name == "*"
                piece = rest
            if applies:
                _add_directives(piece, found)
    return frozenset(found)


# ------------------------------------------------------------------ links


@dataclasses.dataclass(frozen=True, slots=True)
class Link:
    """One link of a page."""

    url: str
    """Absolute ``http``/``https`` URL, resolved against the base URL as a browser does,
    without fragment: the normalised URL that is sent (:func:`~trio_crawler._urls.normalize`)."""
    nofollow: bool
    """``rel="nofollow"`` on every occurrence of the URL, or ``nofollow`` in meta robots."""
    text: str = ""
    """The link's text, of its first occurrence that has any: only with ``anchor_text``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Extracted:
    """What :func:`extract` found in one HTML document."""

    links: tuple[Link, ...]
    """Document order (first occurrence), one per URL, at most ``max_links``."""
    base_url: str
    """The page URL resolved with the first ``<base href>``, if that gives an http(s) URL."""
    title: str | None
    """``<title>`` text, stripped, ASCII whitespace collapsed; None when absent or empty."""
    meta_robots: frozenset[str]
    """Lower-cased directives of ``<meta name="robots">`` and ``<meta name="trio-crawler">``."""
    skipped_schemes: int
    """hrefs dropped for a scheme other than http(s) (``mailto:``, ``javascript:``...)."""
    links_truncated: bool
    """More than ``max_links`` distinct links were present; the rest were not read."""
    skipped_invalid: int = 0
    """hrefs dropped because they do not resolve to a URL (a bad host, a malformed IPv6 host,
    a bad port, no host)."""


class _Skip(enum.Enum):
    SELF = "self"  # empty or fragment-only: the page itself
    SCHEME = "scheme"  # not http(s)
    INVALID = "invalid"  # not a URL by the URL Standard: a bad host or port, no host


_C0_OR_SPACE: Final = "".join(map(chr, range(0x21)))
_TAB_NEWLINE: Final = str.maketrans("", "", "\t\n\r")
_SCHEME_RE: Final = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*):")
# A reference the parser copies as it is (see _Resolver): path characters that no percent-encode
# set of the URL Standard holds ('%' included: the parser never changes one), then a query of
# the same with '?' and without "'" (the special-query set).
_PLAIN_REFERENCE: Final = re.compile(
    r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*+(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?%]*+)?"
).fullmatch
_DOT_PREFIX_RE: Final = re.compile(r"(?:\./)?((?:\.\./){0,32})").match


def _plain(reference: str) -> bool:
    """``reference`` is copied into the URL as it is: plain characters, no dot segment."""
    if _PLAIN_REFERENCE(reference) is None:
        return False
    if reference[:1] not in (".", "%") and "/." not in reference and "/%" not in reference:
        return True  # no segment can be '.', '..' or an escaped one
    path = "/" + reference.partition("?")[0]
    return DOT_SEGMENT.search(path) is None


def _resolve_slow(href: str, base_url: str) -> str | _Skip:
    """The reference resolution of ``href`` against an http(s) ``base_url``.

    Leading and trailing C0 controls and spaces are stripped and tabs and newlines removed (as
    the URL Standard does), then the fragment; an href left empty is the page itself. A scheme
    other than http(s) skips the href. Then the URL Standard's parser with a base
    (:func:`~trio_crawler._urls.resolve`: ada, the normalised URL); an href it refuses is
    invalid.
    """
    text = href.strip(_C0_OR_SPACE).translate(_TAB_NEWLINE)
    before = text.partition("#")[0]
    if not before:
        return _Skip.SELF
    scheme = _SCHEME_RE.match(before)
    if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
        return _Skip.SCHEME
    try:
        # the fragment goes after parsing: cut first, a control before it would be trailing
        url = resolve(text, base_url)
    except ValueError:  # a bad host, a bad port, "http://[::1", no host...
        return _Skip.INVALID
    if not url.startswith(("http://", "https://")):
        return _Skip.SCHEME  # a base that is not http(s): extract() never passes one
    return url


class _Resolver:
    """Resolves hrefs against one base URL, by concatenation where that equals the parser's.

    For an http(s) base ``B`` whose resolution of ``x`` is ``scheme://authority/dir/x`` (one
    parse per page, or slicing for a base in plain normal form), and a *plain* reference
    (:func:`_plain`: characters that no percent-encode set holds, no ``.``/``..``/``%2e``
    segment), the URL Standard's parser copies the reference's segments and query as they
    are, so:

    * an absolute URL in plain normal form (:func:`~trio_crawler._urls.parse_plain`) is itself;
    * ``//host...`` is ``scheme:`` + href when that is in plain normal form (the parser reads a
      scheme-relative reference as the absolute URL with the base's scheme);
    * a plain ``/path`` is ``scheme://authority`` + href (the base's path is replaced);
    * a plain ``dir/page`` with no ``:`` (no scheme) and not starting with ``?`` or ``.`` is
      ``scheme://authority/dir/`` + href: the base's last segment is removed and the
      reference's segments appended, as for ``x``;
    * ``./page`` and ``../../page`` (``page`` as above) are the prefix of the resolution of
      ``../../x`` (computed once per depth) + ``page``, for the same reason.

    A fragment is cut first: the parser's result before the fragment does not depend on it
    (a reference that ends in a space or control once cut is not plain). Everything else goes
    to :func:`_resolve_slow`. The tests hold the two to the same answer.
    """

    __slots__ = ("base_url", "dir_prefix", "dirs", "origin", "scheme", "up_prefixes")

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.scheme = ""
        self.origin = ""  # scheme://authority (user info included, as the parser keeps it)
        self.dir_prefix = ""
        self.dirs: list[str] | None = None  # the directory's segments, for a plain base
        self.up_prefixes: dict[int, str] = {}
        base = parse_plain(base_url)
        if base is not None:
            # In plain normal form (no dot segment, nothing to escape): the parser keeps the
            # base's segments as they are and drops the last, so slicing gives its answer.
            self.scheme = base.scheme
            self.origin = base.url[: base.url.index("/", len(base.scheme) + 3)]
            path = base.path
            self.dir_prefix = self.origin + path[: path.rfind("/") + 1]
            self.dirs = path.split("/")[1:-1]
            return
        try:
            probe = resolve("x", base_url)
        except ValueError:
            return
        for scheme in ("http", "https"):
            if probe.startswith(scheme + "://") and probe.endswith("/x"):
                self.scheme = scheme
                self.origin = probe[: probe.index("/", len(scheme) + 3)]
                self.dir_prefix = probe[:-1]

    def _up_prefix(self, levels: int) -> str:
        """The resolution of ``"../" * levels + "x"`` without its ``x``, or "" when unusable."""
        prefix = self.up_prefixes.get(levels)
        if prefix is None:
            if self.dirs is not None:
                # each '..' drops one segment of the directory, none above the root
                kept = self.dirs[: max(len(self.dirs) - levels, 0)]
                prefix = self.origin + "".join(f"/{segment}" for segment in kept) + "/"
            else:
                prefix = ""
                try:
                    probe = resolve("../" * levels + "x", self.base_url)
                except ValueError:
                    probe = ""
                if probe.startswith(self.origin + "/") and probe.endswith("/x"):
                    prefix = probe[:-1]
            self.up_prefixes[levels] = prefix
        return prefix

    def resolve(self, raw: str) -> str | _Skip:
        href = raw.strip(_C0_OR_SPACE)
        if "#" in href:
            href = href.partition("#")[0]
        if href[:4] == "http":
            parts = parse_plain(href)
            if parts is not None:
                return parts.url
        elif not href:
            return _Skip.SELF
        if ":" in href:
            # The same test as _resolve_slow's: tabs and newlines it removes cannot sit in a
            # matched scheme, and the fragment is already cut.
            scheme = _SCHEME_RE.match(href)
            if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
                return _Skip.SCHEME
        if self.scheme:
            first = href[:1]
            if first == "/":
                if href[1:2] == "/":
                    parts = parse_plain(f"{self.scheme}:{href}")
                    if parts is not None:
                        return parts.url
                elif _plain(href):
                    return self.origin + href
            elif first == ".":
                dots = _DOT_PREFIX_RE(href)
                if dots is not None:
                    rest = href[dots.end() :]
                    if rest[:1] not in ("", ".", "/", "?") and ":" not in rest and _plain(rest):
                        levels = len(dots.group(1)) // 3
                        prefix = self.dir_prefix if levels == 0 else self._up_prefix(levels)
                        if prefix:
                            return prefix + rest
            elif first != "?" and ":" not in href and _plain(href):
                return self.dir_prefix + href
        return _resolve_slow(raw, self.base_url)


# When a page has <area> links: one traversal for everything, links in document order.
_SELECTOR: Final = "a[href], area[href], base[href], meta[name][content], title"
_ASCII_WHITESPACE_RE: Final = re.compile(r"[\t\n\x0c\r ]+")


def _usable_base(href: str, page_url: str) -> str | None:
    resolved = _resolve_slow(href, page_url)
    return resolved if isinstance(resolved, str) else None


def extract(
    tree: LexborHTMLParser,
    page_url: str,
    *,
    max_links: int = 10_000,
    user_agent_token: str = "trio-crawler",
    anchor_text: bool = False,
) -> Extracted:
    """Links, base URL, title and meta robots directives of a parsed HTML document.

    Links come from ``<a href>`` and ``<area href>`` only, in document order, resolved as a
    browser does (the URL Standard, normalised) against the base URL (``page_url``, or the
    first ``<base href>`` resolved against it when that is an http(s) URL), whitespace
    stripped and fragment removed. Empty and
    fragment-only hrefs (the page itself) are skipped; hrefs with another scheme are counted in
    ``skipped_schemes``, unusable ones in ``skipped_invalid``. A URL found several times is kept
    once, at its first place, and is ``nofollow`` only if every occurrence is (or the page's
    meta robots says ``nofollow``). Reading stops at the ``max_links + 1``-th distinct URL.
    ``<meta name=...>`` is read for ``robots`` and for ``user_agent_token``. With
    ``anchor_text``, each link carries its text (:attr:`Link.text`; the crawl's link graph
    asks for it); without, nothing is spent on it. Never raises on any HTML.
    """
    base_url = page_url
    base_seen = False
    title: str | None = None
    title_seen = False
    robots: set[str] = set()
    agent = _agent_token(user_agent_token)
    anchors: list[dict[str, str | None]] = []
    anchor_nodes: list[LexborNode] | None = [] if anchor_text else None
    nodes: Iterable[LexborNode]
    if tree.tags("area"):
        nodes = tree.css(_SELECTOR)  # rare: <a> and <area> links in document order
    else:
        # a tree walk per tag costs a third of one walk matching the selector list
        nodes = itertools.chain(*[tree.tags(tag) for tag in ("base", "meta", "title", "a")])
    for node in nodes:
        tag = node.tag
        if tag == "a" or tag == "area":
            anchors.append(node.attributes)
            if anchor_nodes is not None:
                anchor_nodes.append(node)
        elif tag == "meta":
            attrs = node.attributes
            name = (attrs.get("name") or "").strip().lower()
            if name == "robots" or (name == agent and agent):
                robots |= _meta_directives(attrs.get("content") or "")
        elif tag == "title":
            if not title_seen:
                title_seen = True
                title = _ASCII_WHITESPACE_RE.sub(" ", node.text()).strip(" ") or None
        elif tag == "base" and not base_seen and "href" in (attrs := node.attributes):
            base_seen = True
            base_href = attrs.get("href")
            if base_href:
                base_url = _usable_base(base_href, page_url) or page_url

    # The base URL applies to every link, wherever it appears: resolve now. Link.nofollow is
    # rel="nofollow" only; a page-wide meta robots nofollow is in Extracted.meta_robots.
    resolve = _Resolver(base_url).resolve
    resolved: dict[str, str | _Skip] = {}
    found: dict[str, bool] = {}
    skipped_schemes = 0
    skipped_invalid = 0
    truncated = False
    for attrs in anchors:
        href = attrs.get("href")
        if not href:
            continue
        url = resolved.get(href)
        if url is None:
            url = resolved[href] = resolve(href)
        if type(url) is str:
            rel = attrs.get("rel")
            nofollow = rel is not None and "nofollow" in rel.lower().split()
            seen = found.get(url)
            if seen is None:
                if len(found) >= max_links:
                    truncated = True
                    break
                found[url] = nofollow
            elif seen and not nofollow:
                found[url] = False
        elif url is _Skip.SCHEME:
            skipped_schemes += 1
        elif url is _Skip.INVALID:
            skipped_invalid += 1

    if anchor_nodes is None:
        links = tuple([Link(url, nofollow) for url, nofollow in found.items()])
    else:
        texts = _anchor_texts(anchors, anchor_nodes, resolved, found)
        links = tuple([Link(url, nofollow, texts.get(url, "")) for url, nofollow in found.items()])
    return Extracted(
        links=links,
        base_url=base_url,
        title=title,
        meta_robots=frozenset(robots),
        skipped_schemes=skipped_schemes,
        links_truncated=truncated,
        skipped_invalid=skipped_invalid,
    )


def _anchor_texts(
    anchors: list[dict[str, str | None]],
    nodes: list[LexborNode],
    resolved: dict[str, str | _Skip],
    found: dict[str, bool],
) -> dict[str, str]:
    """Each found URL's anchor text (``anchor_text`` only): what a reader sees of its first
    occurrence that has any: the text, else aria-label or title, else an image's (or an
    area's) alt; whitespace collapsed, cut at ``ANCHOR_MAX`` characters."""
    texts: dict[str, str] = {}
    for attrs, node in zip(anchors, nodes, strict=True):
        url = resolved.get(attrs.get("href") or "")
        if type(url) is not str or url not in found or texts.get(url):
            continue
        text = node.text().strip() or attrs.get("aria-label") or attrs.get("title") or ""
        if not text.strip():
            image = node if node.tag == "area" else node.css_first("img[alt]")
            text = (image.attributes.get("alt") or "") if image is not None else ""
        texts[url] = " ".join(text.split())[:ANCHOR_MAX]
    return texts
