"""Hostile and broken sites, crawled for real on loopback: whatever a server sends, the crawl
ends by itself, the good pages are recorded, each bad page is a failure of the right kind, and
memory stays bounded (measured in a subprocess: ``python tests/hostile.py rss ENCODING 16``).
"""

from __future__ import annotations

import gzip
import json
import sys
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
import trio
import zstandard
from hostile import (
    MiB,
    bomb,
    drip,
    encoded,
    endless_headers,
    head,
    never_answer,
    plain_body,
    raw,
)

from trio_crawler import open_crawler
from trio_crawler.spiders.generic import GenericSpider, PageRecord
from trio_crawler.testing import (
    RecordedRequest,
    Response,
    Site,
    SiteServer,
    html_page,
    loopback_settings,
    open_site_server,
)

HERE = Path(__file__).parent


async def run(
    site: Site, *, limit: float = 30, **overrides: Any
) -> tuple[dict[str, PageRecord], Any, SiteServer]:
    """Crawl ``site`` from ``/``; the records by path (query included), the stats, the server."""
    async with open_site_server(site) as server:
        settings = loopback_settings(server, **overrides)
        with trio.fail_after(limit):
            async with open_crawler(GenericSpider(start_urls=(server.url("/"),)), settings) as c:
                items = [item async for item in c.items()]
    stats = c.statistics()
    assert stats.stop_reason == "finished"
    assert stats.failures.get("other", 0) == 0
    origin = server.origin
    found = {r.url.removeprefix(origin): r for r in items if isinstance(r, PageRecord)}
    return found, stats, server


def links(*paths: str) -> str:
    return "".join(f'<a href="{p}">{i}</a> ' for i, p in enumerate(paths))


# ------------------------------------------------------------------ bodies

BOMBS = ["gzip", "deflate", "deflate-raw", "br", "zstd", "zstd-frames", "identity"]


async def test_bombs_and_huge_bodies_are_cut_at_the_limit() -> None:
    site = Site()
    paths = [f"/bomb/{e}" for e in BOMBS] + ["/plain-200mb"]
    for encoding in BOMBS:
        site.add_raw(f"/bomb/{encoding}", bomb(encoding))
    site.add_raw("/plain-200mb", plain_body(200 * MiB))
    site.add("/", links(*paths, "/ok"))
    site.add("/ok", "fine")
    found, stats, _ = await run(site)
    for path in paths:
        record = found[path]
        assert record.status == 200 and record.truncated, path
        assert record.size == 10 * MiB  # the default max_body_size, on decoded bytes
    assert found["/ok"].status == 200 and not found["/ok"].truncated
    assert stats.truncated == len(paths)
    # the compressed bombs cost little on the wire; the plain bodies stop near the limit
    assert stats.wire_bytes < 2 * 11 * MiB + 1 * MiB


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "zstd-frames", "identity"])
async def test_peak_memory_with_every_fetcher_on_a_bomb(encoding: str) -> None:
    """16 bombs decoded at once (default concurrency 16, default 10 MiB limit) in a process of
    its own; its peak RSS must stay well under 300 MB."""
    with trio.fail_after(50):
        result = await trio.run_process(
            [sys.executable, str(HERE / "hostile.py"), "rss", encoding, "16"],
            capture_stdout=True,
            capture_stderr=True,
        )
    figures = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert figures["all_at_once"] and figures["truncated"] == 16, figures
    assert figures["bytes"] == 16 * 10 * MiB
    # measured 165-236 MiB (baseline 37 MiB; 16 x 10 MiB of bodies); the issue asks < 300
    assert figures["peak_rss_mib"] < 270, figures


async def test_unknown_and_corrupt_encodings_are_content_encoding_failures() -> None:
    page = b"<html><body>" + b"".join(b"<p>line %d</p>" % i for i in range(2000)) + b"</html>"
    gz = gzip.compress(page)
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=25)
    zbig = zstandard.ZstdCompressor(compression_params=params).compressobj()
    site = Site()
    bad = {
        "/stacked": encoded(brotli.compress(gz), "gzip, br"),
        "/compress": encoded(page, "compress"),
        "/x-foo": encoded(page, "x-foo"),
        "/corrupt-gzip": encoded(gz[:100] + b"\xff" * 400 + gz[500:], "gzip"),
        "/not-gzip": encoded(page, "gzip"),
        "/zstd-window-32mb": encoded(zbig.compress(bytes(MiB)) + zbig.flush(), "zstd"),
    }
    good = {
        "/gzip-members": encoded(gzip.compress(page[:10]) + gzip.compress(page[10:]), "gzip"),
        "/gzip-trailing-garbage": encoded(gz + b"\r\n\r\ngarbage", "gzip"),
        "/deflate-raw": encoded(zlib.compress(page)[2:-4], "deflate"),
        "/deflate": encoded(zlib.compress(page), "deflate"),
        "/br": encoded(brotli.compress(page), "br"),
        "/zstd": encoded(zstandard.ZstdCompressor().compress(page), "zstd"),
        "/x-gzip": encoded(gz, "x-gzip"),
        "/identity": encoded(page, "identity"),
    }
    for path, handler in {**bad, **good}.items():
        site.add_raw(path, handler)
    site.add("/", links(*bad, *good))
    found, stats, _ = await run(site)
    for path in bad:
        assert found[path].error_kind == "content_encoding", path
    for path in good:
        assert found[path].status == 200 and found[path].size == len(page), path
        assert found[path].title is None
    assert stats.failures == {"content_encoding": len(bad)}
    assert stats.retries == 0  # not worth another try


async def test_dripped_one_byte_chunks_decode() -> None:
    page = html_page(links("/after")).body
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = co.compress(page) + co.flush()
    site = Site({"/after": "ok"})
    site.add(
        "/",
        Response(
            body=body,
            headers=(("content-type", "text/html"), ("content-encoding", "deflate")),
            drip=0.001,
        ),
    )
    found, _, _ = await run(site)
    assert found["/"].size == len(page)
    assert found["/after"].status == 200


# ------------------------------------------------------------------ content types

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b'<a href="/from-png">x</a>' * 10


async def test_only_html_is_parsed_for_links() -> None:
    site = Site(
        {
            "/": links("/png", "/untyped", "/json", "/xhtml"),
            "/png": Response(body=PNG, headers=(("content-type", "text/html"),)),
            "/untyped": Response(body=b'<!doctype html><a href="/from-untyped">x</a>', headers=()),
            "/json": Response(
                body=b'{"html": "<a href=\\"/from-json\\">x</a>"}',
                headers=(("content-type", "application/json"),),
            ),
            "/xhtml": Response(
                body=b'<html><a href="/from-xhtml">x</a></html>',
                headers=(("content-type", "application/xhtml+xml"),),
            ),
            "/from-untyped": "ok",
            "/from-xhtml": "ok",
        }
    )
    found, _, server = await run(site)
    assert found["/png"].links == 0 and found["/png"].size == len(PNG)
    assert found["/json"].links == 0 and found["/json"].content_type == "application/json"
    assert found["/untyped"].links == 1
    requested = set(server.paths())
    assert "/from-untyped" in requested and "/from-xhtml" in requested
    assert "/from-png" not in requested and "/from-json" not in requested


# ------------------------------------------------------------------ malformed HTTP

OK_HEAD = head(content_type="text/html", content_length="1000")
MALFORMED = {
    "/bad-status-line": (raw(b"HTTP/1.1 abc OK\r\n\r\n"), "protocol"),
    "/garbage-headers": (raw(b"HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n"), "protocol"),
    # llhttp wants "HTTP/" from the first byte: no HTTP/0.9, with or without a blank line
    "/http09": (raw(b"<html>\n<body>no status line, no headers</body>\n</html>\n"), "protocol"),
    "/http09-blank-line": (raw(b"<html>\r\n\r\n<body>no status line</body></html>"), "protocol"),
    "/endless-headers": (endless_headers(), "protocol"),
    "/bad-chunk-size": (
        raw(head(transfer_encoding="chunked") + b"zz\r\nhello\r\n0\r\n\r\n"),
        "protocol",
    ),
    "/empty-close": (raw(b""), "reset"),
    "/empty-reset": (raw(b"", then="reset"), "reset"),
    "/short-body": (raw(OK_HEAD + b"<html>only part"), "reset"),
    "/reset-after-headers": (raw(OK_HEAD, then="reset"), "reset"),
    "/truncated-chunked": (
        raw(head(content_type="text/html", transfer_encoding="chunked") + b"5\r\nhello\r\n"),
        "reset",
    ),
    "/never-answers": (never_answer(), "timeout"),
    "/drips": (drip(0.2), "timeout"),
}


async def test_malformed_responses_are_failures_of_their_page_only() -> None:
    site = Site({"/ok": "fine", "/ok2": "fine"})
    for path, (handler, _) in MALFORMED.items():
        site.add_raw(path, handler)
    site.add("/", links(*MALFORMED, "/ok", "/ok2"))
    # read_timeout > request_timeout: only the whole-request deadline can stop the drip
    found, stats, server = await run(
        site, request_timeout=1.0, read_timeout=5.0, max_retries=1, per_host_concurrency=16
    )
    kinds = {path: found[path].error_kind for path in MALFORMED}
    assert kinds == {path: kind for path, (_, kind) in MALFORMED.items()}
    assert found["/ok"].status == 200 and found["/ok2"].status == 200
    # every one of these kinds is worth one more try (max_retries=1)
    assert stats.retries == len(MALFORMED)
    # an answer-less close or reset on a reused keep-alive connection is sent once more, on a
    # new connection, below the retry (the server may have closed an idle connection)
    resent = {"/empty-close", "/empty-reset"}
    assert all(server.count(path) == 2 for path in MALFORMED if path not in resent)
    assert all(2 <= server.count(path) <= 4 for path in resent)
    assert stats.pages_failed == len(MALFORMED)
    assert stats.elapsed < 5


async def test_longer_body_than_content_length_spoils_nothing() -> None:
    site = Site({"/next": "next page"})
    body = html_page(links("/next")).body
    lie = head(content_type="text/html", content_length=str(len(body)))
    site.add_raw("/", raw(lie + body + b"HTTP/1.1 200 OK\r\n\r\nsmuggled"))
    found, stats, _ = await run(site, per_host_concurrency=1, concurrency=1)
    assert found["/"].size == len(body)
    assert found["/next"].status == 200
    assert stats.failures == {}


async def test_only_the_redirects_browsers_follow_are_followed() -> None:
    # a 300 or a 304 with a Location is an answer (browsers follow neither), as are 305, 306
    statuses = (300, 301, 302, 303, 304, 305, 306, 307, 308)
    site = Site(default=html_page("a target"))
    for status in statuses:
        site.add(
            f"/{status}",
            Response(status=status, headers=(("location", f"/to-{status}"),)),
        )
    site.add("/", links(*(f"/{s}" for s in statuses)))
    found, stats, server = await run(site)
    followed = {s for s in statuses if server.count(f"/to-{s}")}
    assert followed == {301, 302, 303, 307, 308}
    for status in (300, 304, 305, 306):
        record = found[f"/{status}"]
        assert (record.status, record.error_kind) == (status, "http_status")
    assert stats.redirects == 5


# ------------------------------------------------------------------ traps and abuse


async def test_hostile_hrefs_and_long_urls() -> None:
    hrefs = [
        "/" + "a" * 10_000,
        "/ctl\x01\x02\x7f",
        "/new\nline",
        "/%zz%",
        "/%",
        "/%00",
        "/%E2%82",
        "http://[::1",
        "http://exa mple.com/",
        "http://127.0.0.1:99999/",
        "javascript:alert(1)",
        "//" + "x" * 300 + ".example/",
        "/ok?" + "q=1&" * 1000,
        "\x00",
        "/ok",
    ]
    body = "".join(f"<a href='{h}'>x</a>" for h in hrefs)
    site = Site({"/": body, "/ok": "fine"}, default=html_page("anything"))
    found, stats, server = await run(site)
    assert found["/ok"].status == 200
    assert stats.dropped.get("too_long", 0) >= 1
    assert max(len(p) for p in server.paths()) <= 2048


async def test_two_hundred_thousand_links_are_capped() -> None:
    body = "".join(f'<a href="/l{i}">l</a>' for i in range(200_000))
    site = Site({"/": body})
    found, stats, _ = await run(site, max_depth=0, limit=40)
    assert found["/"].links == 10_000  # max_links_per_page's default
    assert stats.links_found == 10_000
    assert stats.dropped.get("too_deep") == 10_000


async def test_max_links_per_page_setting_is_honoured() -> None:
    site = Site({"/": "".join(f'<a href="/l{i}">l</a>' for i in range(500))})
    found, _, _ = await run(site, max_depth=0, max_links_per_page=100)
    assert found["/"].links == 100


async def test_deeply_nested_html() -> None:
    # 100,000 nested <span>s parse in milliseconds. Nested <div>s are quadratic in lexbor
    # (each start tag scans the open-element stack for a <p> in button scope): 100,000 would
    # take over 30 s, so Page.html reads the divs of such a page as spans (MAX_DIV_TAGS).
    spans = "<span>" * 100_000 + '<a href="/deep">deep</a>' + "</span>" * 100_000
    divs = "<div>" * 100_000 + '<a href="/deeper">deeper</a>' + "</div>" * 100_000
    site = Site({"/": spans, "/divs": divs + '<a href="/divs">', "/deep": links("/divs")})
    site.add("/deeper", "bottom")
    found, _, _ = await run(site)
    assert found["/"].status == 200 and found["/"].links == 1
    assert found["/divs"].links == 2 and "/deeper" in found
    assert "/deep" in found


def calendar(request: RecordedRequest) -> Response:
    month = int(request.target.partition("month=")[2] or 0)
    return html_page(links(f"/cal?month={month + 1}", f"/cal?month={month - 1}"))


def growing(request: RecordedRequest) -> Response:
    q = request.target.partition("q=")[2]
    return html_page(links(f"/grow?q={q}a", f"/grow?q={q}b", f"/grow?sid={q}x&q={q}"))


async def test_traps_stay_finite_with_default_trap_settings() -> None:
    """Default trap guards (max_query_variants=500, max_url_length=2048, max_path_depth=32,
    max_repeated_segments=3) and no max_pages: the crawl ends by itself."""
    site = Site(
        {
            "/": links("/cal?month=0", "/grow?q=", "/deep/0", "/loop/a/b/"),
            "/cal": calendar,
            "/grow": growing,
        }
    )
    # one new link a page: /deep/0/1/2/... (max_path_depth) and /loop/a/b/a/b/...
    # (max_repeated_segments)
    site.default = lambda r: html_page(
        links(r.path + ("a/b/" if r.path.startswith("/loop") else f"/{len(r.path)}"))
    )
    found, stats, _ = await run(site, concurrency=16, per_host_concurrency=16, limit=50)
    by_section: dict[str, int] = {}
    for path in found:
        section = path.split("?")[0].split("/")[1]
        by_section[section] = by_section.get(section, 0) + 1
    assert by_section["cal"] <= 501 and by_section["grow"] <= 501, by_section
    assert by_section["deep"] <= 64 and by_section["loop"] <= 64, by_section
    assert stats.dropped.get("trap_query_variants", 0) > 0
