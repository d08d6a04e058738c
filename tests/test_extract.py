"""Tests of the pure extraction core: media types, sniffing, decoding, links, robots directives."""

from __future__ import annotations

import random
import sys
import time

import ada_url
import pytest
from selectolax.lexbor import LexborHTMLParser

from trio_crawler._extract import (
    Extracted,
    Link,
    _resolve_slow,
    _Resolver,
    _Skip,
    decode_body,
    extract,
    media_type,
    robots_directives,
    sniff_is_html,
)

PAGE = "https://example.com/dir/page.html?x=1"


def run(html: str, page_url: str = PAGE, **kwargs: int) -> Extracted:
    return extract(LexborHTMLParser(html), page_url, **kwargs)


def urls(html: str, page_url: str = PAGE) -> list[str]:
    return [link.url for link in run(html, page_url).links]


# ------------------------------------------------------------------ media_type


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("text/html; charset=utf-8", "text/html"),
        ("TEXT/HTML", "text/html"),
        ("  text/html  ;charset=UTF-8", "text/html"),
        ("application/xhtml+xml", "application/xhtml+xml"),
        ("application/ld+json; profile=x", "application/ld+json"),
        ("text/html, text/plain", "text/plain"),
        ("text/html, */*", "text/html"),
        (None, ""),
        ("", ""),
        ("   ", ""),
        ("html", ""),
        ("text/", ""),
        ("/html", ""),
        ("text/html/x", ""),
        ("te xt/html", ""),
        ("\x00garbage\xff", ""),
    ],
)
def test_media_type(header: str | None, expected: str) -> None:
    assert media_type(header) == expected


# ------------------------------------------------------------------ sniffing

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
HTML = b"<!DOCTYPE html><html><head><title>t</title></head><body>hi</body></html>"


@pytest.mark.parametrize(
    ("header", "body", "expected"),
    [
        ("text/html", HTML, True),
        ("text/html; charset=utf-8", b"plain words, no tags", True),
        ("application/xhtml+xml", b'<?xml version="1.0"?><html/>', True),
        ("text/html", b"", True),
        # binary served as HTML
        ("text/html", PNG, False),
        ("text/html", b"GIF89a\x01\x00", False),
        ("text/html", b"\xff\xd8\xff\xe0\x00\x10JFIF", False),
        ("text/html", b"%PDF-1.7\n", False),
        ("text/html", b"PK\x03\x04\x14\x00", False),
        ("text/html", b"\x1f\x8b\x08\x00\x00", False),
        ("text/html", b"RIFF\x10\x00\x00\x00WEBPVP8 ", False),
        ("text/html", b"<html>\x00\x00\x00</html>", False),
        # UTF-16 HTML has NUL bytes and is still HTML
        ("text/html", "\ufeff<html><p>x</p></html>".encode("utf-16-le"), True),
        ("text/html; charset=utf-16le", "<html></html>".encode("utf-16-le"), True),
        # no or generic Content-Type: sniff
        (None, HTML, True),
        ("", b"  \r\n\t<html lang=en>", True),
        (None, b"\xef\xbb\xbf<!doctype HTML>", True),
        (None, "\ufeff<!doctype html>".encode("utf-16-le"), True),
        ("application/octet-stream", b"<!-- comment --><div>x</div>", True),
        ("text/plain", b"<HEAD><TITLE>x</TITLE>", True),
        (None, b'<a href="/x">x</a>', True),
        (None, b"<p>para</p>", True),
        (None, b"<body>", True),
        (None, b'<?xml version="1.0"?>\n<!DOCTYPE html><html>', True),
        (None, b'<?xml version="1.0"?><rss></rss>', False),
        (None, b"<pre>not sniffed</pre>", False),
        (None, b"<abbr>x</abbr>", False),
        (None, b"hello <html>", False),
        (None, b"", False),
        (None, PNG, False),
        ("text/plain", b"just text", False),
        ("application/octet-stream", b"\x00\x01\x02", False),
        # other explicit types
        ("application/json", b'{"a": "<html>"}', False),
        ("application/json", b"<html></html>", False),
        ("image/png", PNG, False),
        ("text/css", b"<html>", False),
        ("garbage", HTML, True),  # unparsable type: treated as missing
    ],
)
def test_sniff_is_html(header: str | None, body: bytes, expected: bool) -> None:
    assert sniff_is_html(header, body) is expected


# ------------------------------------------------------------------ decoding


def test_decode_latin1_header_is_windows_1252() -> None:
    body = "café “quoted” \u2013 €".encode("cp1252")
    assert decode_body(body, "text/html; charset=iso-8859-1") == (
        "café “quoted” \u2013 €",
        "cp1252",
    )
    assert decode_body(body, "text/html; charset=latin1")[0] == "café “quoted” \u2013 €"
    assert decode_body(b"caf\xe9", "text/html; charset=US-ASCII") == ("café", "cp1252")
    assert decode_body(b"caf\xe9", "text/html; charset=latin-1") == ("café", "cp1252")


def test_decode_cp1252_smart_quotes() -> None:
    body = b"<p>\x93smart\x94 \x85</p>"
    assert decode_body(body, "text/html; charset=windows-1252") == (
        "<p>\u201csmart\u201d \u2026</p>",
        "cp1252",
    )
    # undeclared and not UTF-8: windows-1252 fallback
    assert decode_body(body, "text/html") == ("<p>\u201csmart\u201d \u2026</p>", "cp1252")


def test_decode_shift_jis() -> None:
    text = "日本語のページ ①"  # ① is a Windows-31J (cp932) extension, as browsers decode it
    encoded = text.encode("cp932")
    assert decode_body(encoded, "text/html; charset=Shift_JIS") == (text, "cp932")
    assert decode_body(encoded, 'text/html; charset="shift_jis"') == (text, "cp932")
    meta = b'<html><head><meta charset="shift_jis"><title>' + encoded + b"</title>"
    decoded, used = decode_body(meta, None)
    assert used == "cp932"
    assert text in decoded
    http_equiv = (
        b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">' + encoded
    )
    assert decode_body(http_equiv, "text/html") == (http_equiv.decode("cp932"), "cp932")


def test_decode_header_beats_meta() -> None:
    body = b'<meta charset="shift_jis">caf\xc3\xa9'
    assert decode_body(body, "text/html; charset=utf-8") == (
        '<meta charset="shift_jis">café',
        "utf-8",
    )


def test_decode_utf8() -> None:
    body = "<p>naïve café ✓</p>".encode()
    assert decode_body(body, "text/html; charset=UTF-8") == ("<p>naïve café ✓</p>", "utf-8")
    assert decode_body(body, "text/html; charset=utf8") == ("<p>naïve café ✓</p>", "utf-8")
    assert decode_body(body, None) == ("<p>naïve café ✓</p>", "utf-8")
    assert decode_body(b"plain ascii", None) == ("plain ascii", "utf-8")
    assert decode_body(b"", None) == ("", "utf-8")


def test_decode_utf8_bom_without_header_and_against_header() -> None:
    body = b"\xef\xbb\xbf<p>caf\xc3\xa9</p>"
    assert decode_body(body, None) == ("<p>café</p>", "utf-8")
    assert decode_body(body, "text/html") == ("<p>café</p>", "utf-8")
    # as in browsers, the BOM wins over a contradicting header
    assert decode_body(body, "text/html; charset=iso-8859-1") == ("<p>café</p>", "utf-8")


def test_decode_utf16_bom() -> None:
    text = "<html><p>naïve ✓</p></html>"
    assert decode_body(b"\xff\xfe" + text.encode("utf-16-le"), None) == (text, "utf-16-le")
    assert decode_body(b"\xfe\xff" + text.encode("utf-16-be"), "text/html") == (
        text,
        "utf-16-be",
    )
    # a header label "utf-16" without BOM means little-endian, as in browsers
    assert decode_body(text.encode("utf-16-le"), "text/html; charset=utf-16") == (
        text,
        "utf-16-le",
    )


def test_decode_meta_utf16_means_utf8() -> None:
    body = '<meta charset="utf-16"><p>café</p>'.encode()
    assert decode_body(body, None) == ('<meta charset="utf-16"><p>café</p>', "utf-8")


def test_decode_meta_beyond_1024_bytes_is_ignored() -> None:
    body = b"<!--" + b"x" * 1100 + b'--><meta charset="windows-1251">\xe0!'
    text, used = decode_body(body, None)
    assert used == "cp1252"  # not valid UTF-8, meta not seen: fallback
    assert text.endswith("à!")


@pytest.mark.parametrize(
    "header",
    [
        "text/html; charset=bogus-charset",
        "text/html; charset=",
        'text/html; charset=""',
        "text/html; charset=base64",
        "text/html; charset=rot13",
        "text/html; charset=hex",
        "text/html; charset=zlib",
        "text/html; charset=undefined",
        "text/html; charset=idna",
        "text/html; charset=punycode",
        "text/html; charset=unicode_escape",
        "text/html; charset=utf-7",
        "text/html; charset=" + "x" * 500,
        "text/html; charset=\x00\xff",
        "text/html; charset=nonsense; charset=utf-8",  # the first charset parameter counts
    ],
)
def test_decode_bogus_charset_never_raises(header: str) -> None:
    text, used = decode_body("café".encode(), header)
    assert text == "café"
    assert used == "utf-8"
    text, used = decode_body(b"caf\xe9", header)
    assert text == "café"
    assert used == "cp1252"


def test_decode_bogus_meta_charset_never_raises() -> None:
    body = b'<meta charset="undefined"><meta charset=base64>caf\xc3\xa9'
    assert decode_body(body, None)[1] == "utf-8"


def test_decode_invalid_bytes_replaced() -> None:
    text, used = decode_body(b"ok \xff\xfe\xfd end", "text/html; charset=utf-8")
    assert (text, used) == ("ok \ufffd\ufffd\ufffd end", "utf-8")
    text, used = decode_body(b"\x82\xa0\x85\x40!", "text/html; charset=shift_jis")
    assert used == "cp932"
    assert "\ufffd" in text


def test_decode_utf8_cut_mid_character_stays_utf8() -> None:
    body = "é✓".encode() * 100
    text, used = decode_body(body[:-1], None)
    assert used == "utf-8"
    assert text.endswith("é\ufffd")
    # no UTF-8 evidence before the torn byte: windows-1252, as for any non-UTF-8 body
    assert decode_body(b"caf\xe9", None) == ("café", "cp1252")


def test_decode_random_bytes_never_raise() -> None:
    rng = random.Random(7)
    headers = [None, "text/html", "text/html; charset=utf-16", "text/html; charset=euc-jp"]
    for _ in range(300):
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        for header in headers:
            text, used = decode_body(body, header)
            assert isinstance(text, str)
            assert used
            assert isinstance(sniff_is_html(header, body), bool)


# ------------------------------------------------------------------ links


def test_relative_and_absolute_links() -> None:
    html = """
    <a href="other.html">1</a>
    <a href="/root">2</a>
    <a href="../up/x">3</a>
    <a href="./same">4</a>
    <a href="sub/deeper/">5</a>
    <a href="?page=2">6</a>
    <a href="https://other.org/path?q=1">7</a>
    <a href="http://plain.org">8</a>
    <a href="//cdn.example.net/lib.js">9</a>
    <a href="HTTPS://Upper.Example/A">10</a>
    """
    assert urls(html) == [
        "https://example.com/dir/other.html",
        "https://example.com/root",
        "https://example.com/up/x",
        "https://example.com/dir/same",
        "https://example.com/dir/sub/deeper/",
        "https://example.com/dir/page.html?page=2",
        "https://other.org/path?q=1",
        "http://plain.org/",  # links are normalised: the URL that is sent
        "https://cdn.example.net/lib.js",
        "https://upper.example/A",
    ]


def test_protocol_relative_follows_page_scheme() -> None:
    assert urls('<a href="//h.org/x">x</a>', "http://example.com/") == ["http://h.org/x"]


def test_base_href() -> None:
    html = """<html><head><base href="https://cdn.example.org/base/">
    <base href="https://ignored.example/"></head>
    <body><a href="a.html">a</a><a href="/b">b</a><a href="../c">c</a></body></html>"""
    result = run(html)
    assert result.base_url == "https://cdn.example.org/base/"
    assert [link.url for link in result.links] == [
        "https://cdn.example.org/base/a.html",
        "https://cdn.example.org/b",
        "https://cdn.example.org/c",
    ]


def test_relative_base_href() -> None:
    html = '<base href="/other/dir/#frag"><a href="x">x</a><a href="../y">y</a>'
    result = run(html)
    assert result.base_url == "https://example.com/other/dir/"
    assert [link.url for link in result.links] == [
        "https://example.com/other/dir/x",
        "https://example.com/other/y",
    ]


def test_base_href_after_links_still_applies() -> None:
    result = run('<a href="x">x</a><base href="/b/">')
    assert [link.url for link in result.links] == ["https://example.com/b/x"]


@pytest.mark.parametrize("href", ["javascript:void(0)", "mailto:a@b", "", "   ", "data:,x"])
def test_unusable_base_href_is_ignored(href: str) -> None:
    result = run(f'<base href="{href}"><a href="x">x</a>')
    assert result.base_url == PAGE
    assert [link.url for link in result.links] == ["https://example.com/dir/x"]


def test_no_base_means_page_url() -> None:
    assert run("<p>no links</p>").base_url == PAGE


def test_whitespace_around_and_inside_href() -> None:
    html = '<a href="  /a  ">1</a><a href="\n\t/b\r\n">2</a><a href="/c\n/d">3</a>'
    assert urls(html) == [
        "https://example.com/a",
        "https://example.com/b",
        "https://example.com/c/d",
    ]


def test_fragments_are_removed_and_self_links_skipped() -> None:
    html = """<a href="#top">self</a><a href="">self</a><a href>self</a><a href="  # ">self</a>
    <a href="/x#frag">x</a><a href="https://o.org/y#a#b">y</a><a href="z?q#">z</a>
    <a href="/x#other">dup</a>"""
    result = run(html)
    assert [link.url for link in result.links] == [
        "https://example.com/x",
        "https://o.org/y",
        "https://example.com/dir/z?q",
    ]
    assert result.skipped_schemes == 0


def test_non_http_schemes_are_counted() -> None:
    html = """<a href="mailto:a@b.c">m</a><a href="javascript:alert(1)">j</a>
    <a href="tel:+123">t</a><a href="data:text/html,hi">d</a><a href="ftp://f.org/x">f</a>
    <a href="file:///etc/passwd">f</a><a href=" JavaScript:void(0)">j</a>
    <a href="java\nscript:x">j</a><a href="/ok">ok</a>"""
    result = run(html)
    assert [link.url for link in result.links] == ["https://example.com/ok"]
    assert result.skipped_schemes == 8


def test_control_characters_and_bad_hosts_do_not_raise() -> None:
    html = (
        '<a href="/a\x01b">c</a><a href="http://[::1">v6</a><a href="http://[bad]/">v6</a>'
        '<a href="http:">no host</a><a href="https:///x">no host?</a>'
        '<a href="http://a\u2100b/">nfkc</a><a href="/fine">ok</a>'
    )
    result = run(html)
    # a control character is escaped, and "https:///x" names the host x, as in a browser
    assert [link.url for link in result.links] == [
        "https://example.com/a%01b",
        "https://x/",
        "https://example.com/fine",
    ]
    assert result.skipped_invalid == 4


def test_area_links_and_only_a_and_area() -> None:
    html = """<map><area href="/area" shape="rect"></map>
    <link rel="next" href="/next"><img src="/img.png"><script src="/s.js"></script>
    <iframe src="/frame"></iframe><form action="/form"></form><a href="/a">a</a>"""
    assert urls(html) == ["https://example.com/area", "https://example.com/a"]


def test_rel_nofollow() -> None:
    html = """<a href="/a" rel="nofollow">a</a><a href="/b" rel="NoFollow noopener">b</a>
    <a href="/c" rel="ugc sponsored">c</a><a href="/d" rel="nofollowing">d</a>
    <area href="/e" rel="nofollow">"""
    assert run(html).links == (
        Link("https://example.com/a", True),
        Link("https://example.com/b", True),
        Link("https://example.com/c", False),
        Link("https://example.com/d", False),
        Link("https://example.com/e", True),
    )


def test_duplicates_keep_first_place_and_follow_wins() -> None:
    html = """<a href="/a" rel="nofollow">1</a><a href="/b">2</a><a href="/a">3</a>
    <a href="https://example.com/b">4</a><a href="/c" rel="nofollow">5</a>
    <a href="/c" rel="nofollow">6</a>"""
    assert run(html).links == (
        Link("https://example.com/a", False),
        Link("https://example.com/b", False),
        Link("https://example.com/c", True),
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("noindex", {"noindex"}),
        ("NOINDEX, NoFollow", {"noindex", "nofollow"}),
        ("none", {"noindex", "nofollow"}),
        ("index,follow", {"index", "follow"}),
        ("noindex nofollow", {"noindex", "nofollow"}),
        ("max-snippet: 20, noarchive", {"noarchive"}),
        ("", set()),
    ],
)
def test_meta_robots(content: str, expected: set[str]) -> None:
    result = run(f'<head><meta name="robots" content="{content}"></head><a href="/x">x</a>')
    assert result.meta_robots == frozenset(expected)
    # Link.nofollow is rel="nofollow" only; the page-wide directive is in meta_robots
    assert result.links == (Link("https://example.com/x", False),)


def test_meta_robots_names() -> None:
    html = """<meta name=" ROBOTS " content="noindex"><meta name="trio-crawler" content="nofollow">
    <meta name="googlebot" content="noarchive"><meta name="description" content="none">
    <meta name="robots"><meta content="none">"""
    assert run(html).meta_robots == {"noindex", "nofollow"}
    html = '<meta name="mybot" content="noindex"><meta name="trio-crawler" content="nofollow">'
    result = extract(LexborHTMLParser(html), PAGE, user_agent_token="MyBot/2.0")
    assert result.meta_robots == {"noindex"}


def test_title() -> None:
    assert run("<title>  Hello \n\t  World  </title>").title == "Hello World"
    assert run("<title>a</title><title>b</title>").title == "a"
    assert run("<title>Fish &amp; Chips</title>").title == "Fish & Chips"
    assert run("<title>keep\u00a0nbsp</title>").title == "keep\u00a0nbsp"
    assert run("<title>   </title>").title is None
    assert run("<title></title>").title is None
    assert run("<p>untitled</p>").title is None


def test_max_links_truncation() -> None:
    html = "".join(f'<a href="/p{i}">{i}</a>' for i in range(10))
    result = run(html, max_links=3)
    assert [link.url for link in result.links] == [
        "https://example.com/p0",
        "https://example.com/p1",
        "https://example.com/p2",
    ]
    assert result.links_truncated
    exact = run(html, max_links=10)
    assert len(exact.links) == 10
    assert not exact.links_truncated
    # duplicates do not count toward the limit
    dup = run('<a href="/a">1</a><a href="/a">2</a><a href="/b">3</a>', max_links=2)
    assert len(dup.links) == 2
    assert not dup.links_truncated


@pytest.mark.parametrize(
    "html",
    [
        "",
        "<",
        "<a",
        '<a href="/x',
        "<a href='/x'>unclosed <b><i></a></b>",
        "<html><head><title>t",
        "<base href>",
        "<base href='http://[::1'><a href=x>x</a>",
        "<a href=/x>x</a></html></html><a href=/y>",
        "<table><a href=/in-table>x</a><tr><td><a href=/cell>y</a>",
        "<svg><a href='/svg'>s</a><title>svg title</title></svg>",
        "<template><a href='/tpl'>t</a></template>",
        "\x00\x01\x02<a href='/n\x00ul'>",
        "<a href='" + "x" * 100_000 + "'>long</a>",
        "<!-- <a href='/commented'> -->",
        '<a href="\ud7ff\ue000">odd</a>',
    ],
)
def test_malformed_html_never_raises(html: str) -> None:
    result = run(html)
    assert isinstance(result, Extracted)
    assert all(link.url.startswith(("http://", "https://")) for link in result.links)
    assert all("#" not in link.url for link in result.links)


def test_malformed_html_still_finds_links() -> None:
    html = "<div><p><a href=/one>1<a href=/two>2</div><table><tr><a href=/three>3"
    assert urls(html) == [
        "https://example.com/one",
        "https://example.com/two",
        "https://example.com/three",
    ]


def test_deeply_nested_html() -> None:
    depth = 5_000
    html = "<div>" * depth + '<a href="/deep">deep</a>' + "</div>" * depth
    start = time.perf_counter()
    result = run(html)
    assert time.perf_counter() - start < 10
    assert [link.url for link in result.links] == ["https://example.com/deep"]


def _calls_for_links(count: int) -> int:
    """Function calls (Python and C) ``extract`` makes for a page of ``count`` links: a
    deterministic measure of its work (no timing: the machine's load cannot change it)."""
    html = "".join(f'<p><a href="/page/{i}">link {i}</a></p>' for i in range(count))
    tree = LexborHTMLParser(html)
    calls = 0

    def count_calls(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count_calls)
    try:
        result = extract(tree, PAGE, max_links=count)
    finally:
        sys.setprofile(None)
    assert len(result.links) == count
    return calls


def test_twenty_thousand_links_is_linear() -> None:
    small = _calls_for_links(2_000)
    large = _calls_for_links(20_000)
    # linear: about 10x the calls; anything per link that grows with the page would show
    assert large <= small * 11


def test_default_max_links_caps_a_huge_page() -> None:
    html = "".join(f'<a href="/p{i}">{i}</a>' for i in range(12_000))
    result = run(html)
    assert len(result.links) == 10_000
    assert result.links_truncated


# ------------------------------------------------------------------ fast path = the parser

BASES = [
    "https://example.com/dir/page.html",
    "https://example.com/dir/page.html?x=1#frag",
    "http://h",
    "http://h/",
    "https://h/a//b/../c;p?q#f",
    "http://User:pw@H.example:8080/a/b/",
    "HTTP://Ex.COM/x/y/z?q=1",
    "https://h/../..",
    "http://h/a/./b/.",
    "https://[::1]:8443/a/b",
    "http://h/%7Euser/",
    "http://h/a/b/c/d/e/f/g",
    "http://0x7f.1/a\\b/c",
    "https://xn--bcher-kva.example/%2e/d/",
]
ATOMS = [
    "a", "b", "..", ".", "/", "//", "?", "#", "q=1", "&", ";", "x.html", "%20", ":", "@",
    "[", "]", "\\", " ", "\t", "\n", "\x00", "é", "http:", "https:", "//h2", "mailto:",
    "javascript:", "HTTP://", "./", "../", "~", "=", "\u3000", "\x7f", "\u2100", "%2e", "%2E",
    "'", "|", "^", "`", "{", '"', "<", "0x7f.1", "\uff11", "\uff0e", "%41", "%zz", "%", "h.com",
]  # fmt: skip
FIXED_HREFS = [
    "https://a/b", "http://a/b?", "http://a/b??", "//x/y", "/a/b", "a/b", "../a", "./a",
    "../../../../../../a", ".a", "..a", "a/", "/", "?q", "http://a;b", "http://a/b;c",
    "http://[::1]/", "https://a/b#c", "  /x  ", "../", "./", "http://a?b", "http://a:/x",
    "https://x:99999/", "http://\uff41.com/", "http://a\u2100b/", "a:b", "/a:b", "./a:b",
    "../../x?y=../z", "/a/./b", "/a/../b", "a//b", "//", "///x", "http:x", "https:x",
    "http:/x", "http://", "https://?x", "../" * 40 + "x", "./../x", "#", "x#", "  #y",
    "http://h/a/b/..", "http://h/a/b/.", "/a/%2e%2E/b", "a/%2e", "p?", "https:example.com",
    "http://h:0080/", "http://h:08080/x", "\\\\evil.example\\p", "http://0x7f.1/",
    "http://2130706433/", "http://E\u03a3.com/", "a?b'c",
    "http://\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11:8080/x",
    "/a'b", "http://a.1/", "http://1.2.3.4/", "http://01.2.3.4/", "http://xn--a.com/",
]  # fmt: skip


def _href_corpus(count: int) -> list[str]:
    rng = random.Random(5)
    hrefs = set(FIXED_HREFS)
    while len(hrefs) < count:
        hrefs.add("".join(rng.choice(ATOMS) for _ in range(rng.randint(1, 7))))
    return sorted(hrefs)


def test_fast_paths_equal_reference_resolution() -> None:
    hrefs = _href_corpus(8_000)
    for base in BASES:
        resolver = _Resolver(base)
        for href in hrefs:
            assert resolver.resolve(href) == _resolve_slow(href, base), (base, href)


def test_fast_paths_are_taken() -> None:
    resolver = _Resolver("https://example.com/dir/page.html")
    assert resolver.scheme == "https"
    assert resolver.origin == "https://example.com"
    assert resolver.dir_prefix == "https://example.com/dir/"
    assert resolver._up_prefix(1) == "https://example.com/"
    assert resolver._up_prefix(5) == "https://example.com/"


def test_plain_bases_are_split_as_the_parser_resolves() -> None:
    """A base in plain normal form is split by slicing: the parser's "x", "../x"... agree."""
    rng = random.Random(11)
    parts = ["a", "b.html", "/", "//", ".", "..", "?", "q=1", "#", ";", "%2F", ":", "@", "%2e"]
    bases = list(BASES)
    for _ in range(3_000):
        tail = "".join(rng.choice(parts) for _ in range(rng.randint(0, 6)))
        bases.append(
            rng.choice(["http://h", "https://h.org:81", "http://h/d", "https://h/"]) + tail
        )
    quick = 0
    for base in bases:
        resolver = _Resolver(base)
        if resolver.dirs is None:
            continue
        quick += 1
        assert resolver.dir_prefix + "x" == ada_url.join_url(base, "x"), base
        for levels in (1, 2, 3, 7):
            expected = ada_url.join_url(base, "../" * levels + "x")
            assert resolver._up_prefix(levels) + "x" == expected, (base, levels)
    assert quick > 500


def test_reference_resolution_is_the_url_standard() -> None:
    """_resolve_slow is ada's resolution (its public API), fragment dropped."""
    hrefs = _href_corpus(3_000)
    for base in BASES:
        for href in hrefs:
            got = _resolve_slow(href, base)
            try:
                expected: str | None = ada_url.join_url(base, href).partition("#")[0]
            except ValueError:
                expected = None
            if got is _Skip.INVALID:
                assert expected is None, (base, href)
            elif isinstance(got, str):
                assert got == expected, (base, href)
            elif got is _Skip.SELF:
                assert expected == ada_url.normalize_url(base).partition("#")[0], (base, href)
            else:
                assert expected is None or not expected.startswith("http"), (base, href)


def test_resolve_skip_reasons() -> None:
    base = "https://example.com/"
    assert _resolve_slow("#x", base) is _Skip.SELF
    assert _resolve_slow(" \t ", base) is _Skip.SELF
    assert _resolve_slow("mailto:x", base) is _Skip.SCHEME
    assert _resolve_slow("localhost:8080/x", base) is _Skip.SCHEME
    assert _resolve_slow("http://[::1", base) is _Skip.INVALID
    assert _resolve_slow("http://a b/", base) is _Skip.INVALID
    assert _resolve_slow("http://h:65536/", base) is _Skip.INVALID
    # a control character in a path is escaped, as a browser does
    assert _resolve_slow("/a\x00b", base) == "https://example.com/a%00b"


# ------------------------------------------------------------------ X-Robots-Tag


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], set()),
        (["noindex"], {"noindex"}),
        (["NoIndex, NOFOLLOW"], {"noindex", "nofollow"}),
        (["noindex", "nofollow"], {"noindex", "nofollow"}),
        (["none"], {"noindex", "nofollow"}),
        (["all"], {"all"}),
        (["googlebot: noindex"], set()),
        (["otherbot: nofollow"], set()),
        (["trio-crawler: nofollow"], {"nofollow"}),
        (["TRIO-CRAWLER: noindex, nofollow"], {"noindex", "nofollow"}),
        (["trio-crawler: none"], {"noindex", "nofollow"}),
        (["googlebot: noindex, nofollow", "noarchive"], {"noarchive"}),
        (["noarchive, trio-crawler: noindex, otherbot: nofollow"], {"noarchive", "noindex"}),
        (["unavailable_after: 25 Jun 2010 15:00:00 PST"], set()),
        (["unavailable_after: Friday, 25-Jun-2010 15:00:00 GMT, noindex"], {"noindex"}),
        (["max-snippet: 20, max-image-preview: large, nosnippet"], {"nosnippet"}),
        (["trio-crawler: unavailable_after: 2020-01-01"], set()),
        ([", ,  ,"], set()),
        (["!!!, <script>, noindex"], {"noindex"}),
    ],
)
def test_robots_directives(values: list[str], expected: set[str]) -> None:
    assert robots_directives(values, "trio-crawler") == frozenset(expected)


def test_robots_directives_full_user_agent_string() -> None:
    ua = "trio-crawler/0.1.0 (+https://github.com/trio-crawler/trio-crawler)"
    assert robots_directives(["trio-crawler: noindex"], ua) == {"noindex"}
    assert robots_directives(["trio: noindex"], ua) == frozenset()
    assert robots_directives(["noindex"], "") == {"noindex"}


def test_a_base_without_href_is_passed_over() -> None:
    html = '<base target="_blank"><base href="/b/"><a href="x">x</a><meta name="robots">'
    result = run(html)
    assert [link.url for link in result.links] == ["https://example.com/b/x"]
    assert result.meta_robots == frozenset()
