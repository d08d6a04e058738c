"""Sitemap parsing and budget: pure, no sockets, no Trio."""

from __future__ import annotations

import gzip
import random
import time
import zlib

import pytest

from trio_crawler._sitemaps import (
    DEFAULT_MAX_SITEMAPS,
    DEFAULT_MAX_URLS,
    MAX_SITEMAP_BYTES,
    Sitemap,
    SitemapBudget,
    parse_sitemap,
    sitemap_url,
)

BASE = "https://example.com/sitemap.xml"
NS = "http://www.sitemaps.org/schemas/sitemap/0.9"


def urlset(*locs: str, ns: str | None = NS, extra: str = "") -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    body = "".join(f"<url><loc>{loc}</loc><lastmod>2024-01-01</lastmod></url>" for loc in locs)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<urlset{xmlns}{extra}>{body}</urlset>'.encode()


def index(*locs: str) -> bytes:
    body = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return f'<?xml version="1.0"?><sitemapindex xmlns="{NS}">{body}</sitemapindex>'.encode()


def parse(body: bytes, **kwargs: int) -> Sitemap:
    return parse_sitemap(body, base_url=BASE, **kwargs)


# --------------------------------------------------------------------------- XML


@pytest.mark.parametrize("ns", [NS, None, "http://example.com/some/other/ns"])
def test_urlset_with_or_without_namespace(ns: str | None) -> None:
    result = parse(urlset("https://example.com/a", "https://example.com/b", ns=ns))
    assert result == Sitemap(urls=("https://example.com/a", "https://example.com/b"), kind="urlset")


def test_urlset_with_a_namespace_prefix() -> None:
    body = (
        f'<sm:urlset xmlns:sm="{NS}"><sm:url><sm:loc>https://example.com/a</sm:loc></sm:url>'
        "</sm:urlset>"
    ).encode()
    assert parse(body).urls == ("https://example.com/a",)


def test_sitemapindex_lists_child_sitemaps_not_pages() -> None:
    result = parse(index("https://example.com/s1.xml.gz", "https://example.com/s2.xml"))
    assert result.kind == "sitemapindex"
    assert result.sitemaps == ("https://example.com/s1.xml.gz", "https://example.com/s2.xml")
    assert result.urls == ()


def test_extension_locs_are_not_pages() -> None:
    extra = (
        ' xmlns:image="http://www.google.com/schemas/sitemap-image/1.1"'
        ' xmlns:video="http://www.google.com/schemas/sitemap-video/1.1"'
        ' xmlns:xhtml="http://www.w3.org/1999/xhtml"'
    )
    body = (
        f'<urlset xmlns="{NS}"{extra}><url><loc>https://example.com/page</loc>'
        "<image:image><image:loc>https://cdn.example.com/i.jpg</image:loc></image:image>"
        "<video:video><video:content_loc>https://cdn.example.com/v.mp4</video:content_loc>"
        "<video:player_loc>https://example.com/player</video:player_loc></video:video>"
        '<xhtml:link rel="alternate" hreflang="de" href="https://example.com/de/page"/>'
        "</url></urlset>"
    ).encode()
    assert parse(body).urls == ("https://example.com/page",)


def test_loc_text_is_stripped_unescaped_and_cdata_read() -> None:
    body = (
        f'<urlset xmlns="{NS}">'
        "<url><loc>\n   https://example.com/a?x=1&amp;y=2 \n</loc></url>"
        "<url><loc><![CDATA[https://example.com/b?x=1&y=2]]></loc></url>"
        "<url><loc>https://example.com/&#233;t&#xE9;</loc></url>"
        "</urlset>"
    ).encode()
    assert parse(body).urls == (
        "https://example.com/a?x=1&y=2",
        "https://example.com/b?x=1&y=2",
        "https://example.com/été",
    )


def test_relative_locs_resolved_bad_ones_skipped_duplicates_dropped() -> None:
    body = urlset(
        "/relative",
        "https://example.com/a#frag",
        "https://example.com/a",
        "mailto:someone@example.com",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "   ",
        "https://example.com/with space",
        "http://",
    )
    result = parse(body)
    assert result.urls == ("https://example.com/relative", "https://example.com/a")
    assert result.skipped == 6


def test_comments_are_not_entries() -> None:
    body = (
        f'<urlset xmlns="{NS}"><!-- <url><loc>https://example.com/hidden</loc></url> -->'
        "<url><loc>https://example.com/shown</loc></url></urlset>"
    ).encode()
    assert parse(body).urls == ("https://example.com/shown",)


def test_declared_encoding_is_honoured() -> None:
    text = '<?xml version="1.0" encoding="ISO-8859-1"?>' + (
        f'<urlset xmlns="{NS}"><url><loc>https://example.com/caf\u00e9</loc></url></urlset>'
    )
    assert parse(text.encode("latin-1")).urls == ("https://example.com/café",)
    utf16 = text.replace("ISO-8859-1", "UTF-16").encode("utf-16")
    assert parse(utf16).urls == ("https://example.com/café",)


def test_byte_order_mark_and_leading_whitespace() -> None:
    assert parse(b"\xef\xbb\xbf" + urlset("https://example.com/a")).urls == (
        "https://example.com/a",
    )
    assert parse(b"\n\n  " + urlset("https://example.com/a").split(b"\n", 1)[1]).urls == (
        "https://example.com/a",
    )


# --------------------------------------------------------------------------- malformed input


def test_raw_ampersand_falls_back_to_tolerant_reading() -> None:
    body = urlset("https://example.com/a?x=1&y=2", "https://example.com/b?p=1&amp;q=2")
    result = parse(body)
    assert result.kind == "urlset"
    assert result.urls == ("https://example.com/a?x=1&y=2", "https://example.com/b?p=1&q=2")


def test_fallback_ignores_extension_locs_and_comments() -> None:
    body = (
        f'<urlset xmlns="{NS}" xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        "<!-- <loc>https://example.com/commented</loc> -->"
        "<url><loc>https://example.com/p?a=1&b=2</loc>"
        "<image:image><image:loc>https://cdn.example.com/i.jpg</image:loc></image:image></url>"
        "<url><loc><![CDATA[https://example.com/q]]></loc></url>"
        "</urlset>"
    ).encode()
    assert parse(body).urls == ("https://example.com/p?a=1&b=2", "https://example.com/q")


def test_truncated_document_keeps_what_came_before_the_cut() -> None:
    body = urlset(*(f"https://example.com/{i}" for i in range(10)))
    cut = body[: body.index(b"https://example.com/7")]
    assert parse(cut).urls == tuple(f"https://example.com/{i}" for i in range(7))


def test_truncated_index_is_still_an_index() -> None:
    body = index("https://example.com/s1.xml", "https://example.com/s2.xml")
    cut = body[: body.index(b"https://example.com/s2")]
    result = parse(cut)
    assert result.kind == "sitemapindex"
    assert result.sitemaps == ("https://example.com/s1.xml",)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<",
        b"<<<<>>>>",
        b"\x00\x01\x02\x03" * 100,
        b"<!doctype html><html><body><a href='/x'>x</a></body></html>",
        b"<html><body><loc>https://example.com/not-a-sitemap</loc></body></html>",
        b'<?xml version="1.0"?><rss><channel><item><link>https://e.com/x</link></item></channel></rss>',
        b'{"urls": ["https://example.com/a"]}',
        b'<?xml version="1.0" encoding="no-such-codec"?><urlset/>',
        b"<urlset><url><loc>",
        b"\x1f\x8b",
        b"\x1f\x8b\x08\x00garbage after the gzip magic",
        "<urlset>\udcff</urlset>".encode("utf-8", "surrogateescape"),
    ],
)
def test_garbage_never_raises_and_gives_no_pages(body: bytes) -> None:
    result = parse(body)
    assert isinstance(result, Sitemap)
    assert result.urls == () and result.sitemaps == ()


def test_random_garbage_never_raises() -> None:
    rng = random.Random(1234)
    pieces = [b"<urlset>", b"<url>", b"<loc>", b"</loc>", b"</url>", b"&", b"&amp;", b"<!--",
              b"-->", b"<![CDATA[", b"]]>", b"https://example.com/", b"\x00", b"\xff", b"\n",
              b"<sitemapindex>", b"<sitemap>", b"<?xml", b"?>", b"\x1f\x8b"]  # fmt: skip
    for _ in range(500):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        if rng.random() < 0.2:
            body = gzip.compress(body)[: rng.randrange(2, 60)]
        result = parse(body)
        assert isinstance(result, Sitemap)
        assert all(u.startswith("https://") for u in result.urls + result.sitemaps)


# --------------------------------------------------------------------------- XML attacks

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset><url><loc>https://example.com/&lol9;</loc></url></urlset>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>https://example.com/&xxe;</loc></url></urlset>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE urlset SYSTEM "http://attacker.example/evil.dtd">
<urlset><url><loc>https://example.com/a</loc></url></urlset>"""

QUADRATIC = (
    b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "'
    + b"x" * 50_000
    + b'">]><urlset><url><loc>https://example.com/'
    + b"&a;" * 50_000
    + b"</loc></url></urlset>"
)


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD, QUADRATIC],
    ids=["billion_laughs", "xxe", "external_dtd", "quadratic_blowup"],
)
def test_documents_with_a_dtd_are_rejected_without_expansion(body: bytes) -> None:
    started = time.perf_counter()
    for variant in (body, gzip.compress(body), body.decode().encode("utf-16")):
        result = parse(variant)
        assert result.urls == () and result.sitemaps == ()
        assert result.kind == "invalid"
    assert time.perf_counter() - started < 1.0


def test_dtd_in_a_malformed_document_is_rejected_too() -> None:
    body = XXE.replace(b"<urlset>", b"<urlset><url><loc>https://example.com/x?a&b</loc></url>")
    assert parse(body).urls == ()


def test_undeclared_entities_are_not_resolved() -> None:
    body = urlset("https://example.com/a", "https://example.com/&nbsp;b")
    assert parse(body).urls == ("https://example.com/a", "https://example.com/&nbsp;b")


# --------------------------------------------------------------------------- gzip


def test_gzip_body_is_detected_by_magic_bytes() -> None:
    body = gzip.compress(urlset("https://example.com/a", "https://example.com/b"))
    assert parse(body).urls == ("https://example.com/a", "https://example.com/b")
    assert parse(gzip.compress(index("https://example.com/s.xml"))).sitemaps == (
        "https://example.com/s.xml",
    )


def test_concatenated_gzip_members_are_all_read() -> None:
    text = urlset("https://example.com/a", "https://example.com/b")
    half = len(text) // 2
    body = gzip.compress(text[:half]) + gzip.compress(text[half:])
    assert parse(body).urls == ("https://example.com/a", "https://example.com/b")


def test_gzip_bomb_is_bounded() -> None:
    head = urlset("https://example.com/a").replace(b"</urlset>", b"")
    bomb = gzip.compress(head + b" " * (16 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 50_000
    result = parse(bomb, max_bytes=1024 * 1024)
    assert result.truncated
    assert result.urls == ("https://example.com/a",)


def test_default_byte_bound_is_the_protocol_limit() -> None:
    assert MAX_SITEMAP_BYTES == 50 * 1024 * 1024
    bomb = gzip.compress(b"<urlset>" + b" " * (MAX_SITEMAP_BYTES + 10), compresslevel=1)
    result = parse(bomb)
    assert result.truncated and result.urls == ()


def test_corrupt_gzip_keeps_what_decompressed() -> None:
    body = gzip.compress(urlset(*(f"https://example.com/{i}" for i in range(2000))))
    damaged = body[: len(body) // 2]
    result = parse(damaged)
    assert 0 < len(result.urls) < 2000
    assert parse(zlib.compress(b"not gzip at all")).urls == ()


def test_oversized_plain_body_is_cut() -> None:
    body = urlset(*(f"https://example.com/{i}" for i in range(100)))
    result = parse(body, max_bytes=len(body) // 2)
    assert result.truncated
    assert 0 < len(result.urls) < 100


# --------------------------------------------------------------------------- text sitemaps


def test_text_sitemap_one_url_per_line() -> None:
    body = (
        b"\xef\xbb\xbfhttps://example.com/a\r\n\r\n  https://example.com/b  \n"
        b"https://example.com/a\nnot a url\n/relative\nmailto:x@example.com\nhttp://example.com/c"
    )
    result = parse(body)
    assert result.kind == "text"
    assert result.urls == ("https://example.com/a", "https://example.com/b", "http://example.com/c")
    assert result.skipped == 3


def test_text_error_page_gives_nothing() -> None:
    assert parse(b"404").urls == ()
    assert parse(b"Not Found").urls == ()
    assert parse(gzip.compress(b"https://example.com/a\n")).urls == ("https://example.com/a",)


# --------------------------------------------------------------------------- bounds


def test_max_urls_bounds_entries_and_says_so() -> None:
    locs = [f"https://example.com/{i}" for i in range(10)]
    result = parse(urlset(*locs), max_urls=3)
    assert result.urls == tuple(locs[:3]) and result.truncated
    exact = parse(urlset(*locs), max_urls=10)
    assert exact.urls == tuple(locs) and not exact.truncated
    assert parse(urlset(*locs), max_urls=0).urls == ()
    text = parse("\n".join(locs).encode(), max_urls=4)
    assert text.urls == tuple(locs[:4]) and text.truncated
    fallback = parse(urlset(*(f"{loc}?a&b" for loc in locs)), max_urls=2)
    assert len(fallback.urls) == 2 and fallback.truncated


def test_protocol_sized_sitemap_is_read_whole_and_quickly() -> None:
    locs = [f"https://example.com/page/{i}" for i in range(DEFAULT_MAX_URLS)]
    body = urlset(*locs)
    started = time.perf_counter()
    result = parse(body)
    assert time.perf_counter() - started < 5.0
    assert len(result.urls) == DEFAULT_MAX_URLS and not result.truncated
    over = parse(urlset(*locs, "https://example.com/one-more"))
    assert len(over.urls) == DEFAULT_MAX_URLS and over.truncated


def test_negative_bounds_are_refused() -> None:
    with pytest.raises(ValueError):
        parse(b"", max_urls=-1)
    with pytest.raises(ValueError):
        SitemapBudget(max_sitemaps=-1)


# --------------------------------------------------------------------------- budget


def test_budget_defaults() -> None:
    budget = SitemapBudget()
    assert (budget.max_sitemaps, budget.max_urls) == (DEFAULT_MAX_SITEMAPS, DEFAULT_MAX_URLS)
    assert (DEFAULT_MAX_SITEMAPS, DEFAULT_MAX_URLS) == (50, 50_000)
    assert budget.remaining_urls == 50_000 and not budget.exhausted


def test_budget_counts_sitemaps_and_refuses_repeats() -> None:
    budget = SitemapBudget(max_sitemaps=2)
    assert budget.admit_sitemap("https://example.com/sitemap.xml")
    assert not budget.admit_sitemap("https://example.com/sitemap.xml")  # an index loop
    assert not budget.admit_sitemap("https://example.com/sitemap.xml#again")
    assert budget.admit_sitemap("https://example.com/other.xml")
    assert budget.exhausted
    assert not budget.admit_sitemap("https://example.com/third.xml")
    assert (budget.sitemaps_fetched, budget.sitemaps_refused) == (2, 1)


def test_budget_takes_urls_up_to_its_limit() -> None:
    budget = SitemapBudget(max_urls=5)
    assert budget.take_urls(["a", "b", "c"]) == ("a", "b", "c")
    assert budget.remaining_urls == 2
    assert budget.take_urls(["d", "e", "f", "g"]) == ("d", "e")
    assert budget.take_urls(["h"]) == ()
    assert (budget.urls_taken, budget.urls_refused) == (5, 3)
    assert budget.exhausted
    assert not budget.admit_sitemap("https://example.com/s.xml")


def test_budget_and_parser_together_walk_an_index() -> None:
    """The loop the engine is expected to run, on canned bodies."""
    bodies = {
        "https://example.com/sitemap.xml": index(
            "https://example.com/s1.xml.gz", "https://example.com/s2.xml",
            "https://example.com/sitemap.xml",
        ),
        "https://example.com/s1.xml.gz": gzip.compress(
            urlset(*(f"https://example.com/a{i}" for i in range(4)))
        ),
        "https://example.com/s2.xml": urlset(*(f"https://example.com/b{i}" for i in range(4))),
    }  # fmt: skip
    budget = SitemapBudget(max_sitemaps=10, max_urls=6)
    todo = ["https://example.com/sitemap.xml"]
    pages: list[str] = []
    while todo:
        url = todo.pop(0)
        if not budget.admit_sitemap(url):
            continue
        parsed = parse_sitemap(bodies[url], base_url=url, max_urls=budget.remaining_urls)
        todo.extend(parsed.sitemaps)
        pages.extend(budget.take_urls(parsed.urls))
    assert pages == [f"https://example.com/a{i}" for i in range(4)] + [
        "https://example.com/b0",
        "https://example.com/b1",
    ]
    assert budget.sitemaps_fetched == 3


def test_sitemap_url_of_an_origin() -> None:
    assert sitemap_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/sitemap.xml"
    assert sitemap_url("https://example.com/some/page?x") == "https://example.com/sitemap.xml"
    with pytest.raises(ValueError):
        sitemap_url("not a url")
