"""No input from a site is ever an internal error (issue 16, section 2).

Garbage status lines, header sections and bodies, each served by a raw loopback server
(``tests/hostile.py``), are crawled for real: every page ends as a page or as a recorded
failure of a kind, none as ``other`` (the engine's "internal error"), and nothing is logged
at ERROR. The expected outcome of each is written next to it: a status for a page, a failure
kind otherwise.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from typing import Any

import pytest
import trio
from hostile import Endless, head, never_answer, raw

from trio_crawler import open_crawler
from trio_crawler.spiders.generic import GenericSpider, PageRecord
from trio_crawler.testing import RawHandler, Site, html_page, loopback_settings, open_site_server

PAGE = b"<html><head><title>t</title></head><body>fine</body></html>"
OK_HEAD = head(content_type="text/html", content_length=str(len(PAGE)))
CHUNKED = head(content_type="text/html", transfer_encoding="chunked")


def answer(data: bytes) -> RawHandler:
    """Send ``data`` and close."""
    return raw(data)


def with_headers(*lines: bytes, body: bytes = PAGE, status: bytes = b"200 OK") -> RawHandler:
    """A response with these raw header lines, then ``body`` (framed by the close unless a
    line says otherwise)."""
    return raw(
        b"HTTP/1.1 " + status + b"\r\n" + b"".join(x + b"\r\n" for x in lines) + b"\r\n" + body
    )


def moved(location: bytes, status: bytes = b"302 Found") -> RawHandler:
    """A redirect to ``location``, as sent."""
    return with_headers(b"Location: " + location, b"Content-Length: 0", status=status, body=b"")


def encoded(encoding: str, body: bytes) -> RawHandler:
    return with_headers(
        b"Content-Type: text/html",
        b"Content-Encoding: " + encoding.encode(),
        b"Content-Length: %d" % len(body),
        body=body,
    )


STATUS_LINES: dict[str, tuple[RawHandler, int | str]] = {
    "/no-status": (answer(b"HTTP/1.1\r\n\r\n" + PAGE), "protocol"),
    "/status-abc": (answer(b"HTTP/1.1 abc OK\r\n\r\n" + PAGE), "protocol"),
    "/version-9.9": (answer(b"HTTP/9.9 200 OK\r\n\r\n" + PAGE), "protocol"),
    "/version-2": (answer(b"HTTP/2 200 OK\r\n\r\n" + PAGE), "protocol"),
    "/lowercase": (answer(b"http/1.1 200 OK\r\n\r\n" + PAGE), "protocol"),
    "/icy": (answer(b"ICY 200 OK\r\n\r\n" + PAGE), "protocol"),
    "/status-0": (answer(b"HTTP/1.1 0 OK\r\n\r\n" + PAGE), "protocol"),
    "/status-000": (answer(b"HTTP/1.1 000 OK\r\ncontent-length: 4\r\n\r\nbody"), "protocol"),
    "/status-099": (
        answer(b"HTTP/1.1 099 X\r\ncontent-length: 4\r\n\r\nEVIL" + OK_HEAD + PAGE),
        "protocol",
    ),
    "/status-199-with-body": (
        answer(b"HTTP/1.1 199 X\r\ncontent-length: 4\r\n\r\nEVIL" + OK_HEAD + PAGE),
        "protocol",
    ),
    "/status-1000": (answer(b"HTTP/1.1 1000 X\r\n\r\n" + PAGE), "protocol"),
    "/status-999": (answer(b"HTTP/1.1 999 X\r\n\r\n" + PAGE), "http_status"),
    "/status-600": (answer(b"HTTP/1.1 600 X\r\n\r\n" + PAGE), "http_status"),
    "/no-reason": (answer(b"HTTP/1.1 200\r\n\r\n" + PAGE), 200),
    "/reason-50kib": (answer(b"HTTP/1.1 200 " + b"r" * 50_000 + b"\r\n\r\n" + PAGE), 200),
    "/reason-200kib": (answer(b"HTTP/1.1 200 " + b"r" * 200_000 + b"\r\n\r\n" + PAGE), "protocol"),
    "/reason-binary": (answer(b"HTTP/1.1 200 \x80\xff\t\x01\r\n\r\n" + PAGE), 200),
    "/status-line-only": (answer(b"HTTP/1.1 200 OK\r\n"), "reset"),
    "/http-then-close": (answer(b"HTTP/"), "reset"),
    "/binary": (answer(bytes(range(256)) * 4), "protocol"),
    "/html-no-head": (answer(PAGE), "protocol"),
    "/interim-flood": (
        Endless(b"", b"HTTP/1.1 100 Continue\r\n\r\n"),
        "protocol",
    ),
    "/101": (answer(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n"), "protocol"),
}

HEADERS: dict[str, tuple[RawHandler, int | str]] = {
    "/no-colon": (with_headers(b"this is not a header"), "protocol"),
    "/empty-name": (with_headers(b": value"), "protocol"),
    "/space-in-name": (with_headers(b"X Y: z"), "protocol"),
    "/space-before-colon": (with_headers(b"X-Y : z"), "protocol"),
    "/nul-in-value": (with_headers(b"X-Y: a\x00b"), "protocol"),
    "/cr-in-value": (with_headers(b"X-Y: a\rb"), "protocol"),
    "/del-in-value": (with_headers(b"X-Y: a\x7fb"), "protocol"),
    "/obs-text-value": (with_headers(b"Content-Type: text/html; x=\x80\xff"), 200),
    "/huge-header": (with_headers(b"X-Big: " + b"v" * 200_000), "protocol"),
    "/many-fields": (with_headers(*(b"X-%d: v" % i for i in range(8_000))), 200),  # 88 KB
    "/too-many-fields": (with_headers(*(b"X-%d: v" % i for i in range(10_000))), "protocol"),
    "/endless-headers": (Endless(b"HTTP/1.1 200 OK\r\n", b"X-Filler: aaaaaaaa\r\n"), "protocol"),
    "/folded-first-line": (with_headers(b" folded: x"), "protocol"),
    "/folded": (with_headers(b"Content-Type: text/html;", b" charset=utf-8"), 200),
    "/lengths-equal": (
        with_headers(b"Content-Length: %d" % len(PAGE), b"Content-Length: %d" % len(PAGE)),
        200,
    ),
    "/lengths-conflicting": (
        with_headers(b"Content-Length: %d" % len(PAGE), b"Content-Length: 3"),
        "protocol",
    ),
    "/length-list-conflicting": (with_headers(b"Content-Length: 3, 4"), "protocol"),
    "/length-negative": (with_headers(b"Content-Length: -1"), "protocol"),
    "/length-hex": (with_headers(b"Content-Length: 0x10"), "protocol"),
    "/length-empty": (with_headers(b"Content-Length: "), "protocol"),
    "/length-overflow": (with_headers(b"Content-Length: 99999999999999999999999"), "protocol"),
    "/length-too-long": (with_headers(b"Content-Length: 100000"), "reset"),
    "/length-and-chunked": (
        with_headers(b"Content-Length: 3", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n"),
        "protocol",
    ),
    "/chunked-then-gzip": (with_headers(b"Transfer-Encoding: chunked, gzip"), 200),
    "/transfer-gzip": (with_headers(b"Transfer-Encoding: gzip"), 200),
    "/transfer-unknown": (with_headers(b"Transfer-Encoding: x-unknown"), 200),
    "/encoding-unknown": (encoded("x-unknown", PAGE), "content_encoding"),
    "/encoding-stacked": (encoded("gzip, br", gzip.compress(PAGE)), "content_encoding"),
    "/encoding-identity-list": (encoded("gzip, identity", gzip.compress(PAGE)), 200),
    "/encoding-empty": (encoded("", PAGE), 200),
    "/encoding-commas": (encoded(",,,", PAGE), 200),
    "/set-cookie-binary": (with_headers(b"Set-Cookie: a=\x80\xff\xfe; Path=/"), 200),
    "/set-cookie-junk": (with_headers(b"Set-Cookie: ;;;===;; Path=\xff; Max-Age=x"), 200),
    "/content-type-junk": (with_headers(b"Content-Type: text/html; charset=\xff\xfe-junk"), 200),
    "/content-type-unknown-charset": (
        with_headers(b"Content-Type: text/html; charset=x-no-such-thing"),
        200,
    ),
    "/location-binary": (moved(b"/\xff\xfe\x80"), 200),  # followed: a default route's page
    "/location-empty": (moved(b""), "redirect_loop"),
    "/location-javascript": (moved(b"javascript:alert(1)", b"301 X"), "bad_scheme"),
    "/location-bad-port": (moved(b"http://127.0.0.1:99999/"), "bad_url"),
    "/location-300": (moved(b"/elsewhere", b"300 X"), "http_status"),
    "/retry-after-junk": (
        with_headers(
            b"Retry-After: \xff\xfe soon", b"Content-Length: 0", status=b"503 X", body=b""
        ),
        "http_status",
    ),
}

BODIES: dict[str, tuple[RawHandler, int | str]] = {
    "/chunked-truncated": (answer(CHUNKED + b"5\r\nhello\r\n"), "reset"),
    "/chunked-bad-size": (answer(CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n"), "protocol"),
    "/chunked-negative": (answer(CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n"), "protocol"),
    "/chunked-overflow": (answer(CHUNKED + b"f" * 40 + b"\r\nhello\r\n0\r\n\r\n"), "protocol"),
    "/chunked-no-crlf": (answer(CHUNKED + b"5\r\nhelloX0\r\n\r\n"), "protocol"),
    "/chunked-size-too-big": (answer(CHUNKED + b"ffff\r\nhello\r\n0\r\n\r\n"), "reset"),
    "/chunked-bare-lf": (answer(CHUNKED + b"5\nhello\n0\n\n"), 200),
    "/chunked-length-trailer": (
        answer(CHUNKED + b"5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"),
        200,
    ),
    "/chunked-junk-trailer": (answer(CHUNKED + b"5\r\nhello\r\n0\r\n\x00\xff junk\r\n\r\n"), 200),
    "/chunked-endless-extension": (Endless(CHUNKED + b"5;", b"e" * 1024), "protocol"),
    "/chunked-endless-trailer": (Endless(CHUNKED + b"0\r\nX: ", b"v" * 1024), "protocol"),
    "/overlong": (answer(OK_HEAD + PAGE + b"HTTP/1.1 200 OK\r\n\r\nsmuggled"), 200),
    "/short": (answer(OK_HEAD + PAGE[:10]), "reset"),
    "/html-garbage": (answer(head(content_type="text/html") + bytes(range(256)) * 100), 200),
    "/empty-gzip-members": (
        Endless(head(content_type="text/html", content_encoding="gzip"), gzip.compress(b"")),
        200,  # truncated: nothing decoded after 1 MiB
    ),
    "/nothing-then-close": (answer(head(content_type="text/html")), 200),
    "/never-answers": (never_answer(), "timeout"),
}
for coding, junk in {
    "gzip": b"\x1f\x8b" + bytes(100),
    "deflate": b"\x78\x9c\xff\xff\xff\xff",
    "br": b"\xff" * 64,
    "zstd": b"\x28\xb5\x2f\xfd" + b"\xff" * 64,
    "x-gzip": b"not gzip at all",
}.items():
    BODIES[f"/junk-{coding}"] = (encoded(coding, junk), "content_encoding")
BODIES["/deflate-cut-short"] = (encoded("deflate", zlib.compress(PAGE)[:20]), 200)
BODIES["/gzip-then-junk"] = (encoded("gzip", gzip.compress(PAGE) + b"\xff" * 50), 200)

GARBAGE = {**STATUS_LINES, **HEADERS, **BODIES}
# the kinds a page may fail with here; "other" is the engine's internal error
KINDS = {
    "protocol",
    "reset",
    "timeout",
    "http_status",
    "content_encoding",
    "bad_url",
    "bad_scheme",
    "redirect_loop",
}


def links(paths: list[str]) -> bytes:
    return "".join(f'<a href="{p}">{i}</a> ' for i, p in enumerate(paths)).encode()


async def crawl_garbage(
    routes: dict[str, tuple[RawHandler, int | str]], caplog: pytest.LogCaptureFixture
) -> tuple[dict[str, PageRecord], Any]:
    site = Site(default=html_page("a page of the default route"))
    for path, (handler, _) in routes.items():
        site.add_raw(path, handler)
    site.add("/", html_page(links(list(routes)).decode()))
    caplog.set_level(logging.INFO)
    async with open_site_server(site) as server:
        settings = loopback_settings(
            server,
            request_timeout=3.0,
            read_timeout=2.0,
            connect_timeout=2.0,
            max_retries=0,
            concurrency=16,
            per_host_concurrency=16,
            max_depth=2,
        )
        with trio.fail_after(40):
            spider = GenericSpider(start_urls=(server.url("/"),))
            async with open_crawler(spider, settings) as crawler:
                items = [item async for item in crawler.items()]
    stats = crawler.statistics()
    origin = server.origin
    found = {r.url.removeprefix(origin): r for r in items if isinstance(r, PageRecord)}
    return found, stats


def outcome(record: PageRecord) -> int | str | None:
    return record.error_kind if record.error_kind is not None else record.status


@pytest.mark.parametrize(
    "routes",
    [STATUS_LINES, HEADERS, BODIES],
    ids=["status-lines", "headers", "bodies"],
)
async def test_garbage_from_a_site_is_never_an_internal_error(
    routes: dict[str, tuple[RawHandler, int | str]], caplog: pytest.LogCaptureFixture
) -> None:
    found, stats = await crawl_garbage(routes, caplog)
    assert stats.stop_reason == "finished"
    assert "other" not in stats.failures, dict(stats.failures)
    assert set(stats.failures) <= KINDS, dict(stats.failures)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not errors, [r.getMessage() for r in errors]
    got = {path: outcome(found[path]) for path in routes}
    assert got == {path: expected for path, (_, expected) in routes.items()}


async def test_a_location_the_url_parser_refuses(caplog: pytest.LogCaptureFixture) -> None:
    refused = moved(b"http://[::1")
    found, stats = await crawl_garbage({"/location-bad-ipv6": (refused, "bad_url")}, caplog)
    assert "other" not in stats.failures, dict(stats.failures)
    assert outcome(found["/location-bad-ipv6"]) == "bad_url"


async def test_a_raw_utf8_location_is_read_as_utf8(caplog: pytest.LogCaptureFixture) -> None:
    """``Location: /café`` in UTF-8 bytes: the next request is ``GET /caf%C3%A9`` (it was
    read as Latin-1: ``/caf%C3%83%C2%A9``)."""
    found, _ = await crawl_garbage({"/utf8": (moved("/café".encode()), 200)}, caplog)
    assert found["/utf8"].final_url.endswith("/caf%C3%A9")


async def test_differing_location_fields_are_refused(caplog: pytest.LogCaptureFixture) -> None:
    twice = with_headers(
        b"Location: /a", b"Location: /b", b"Content-Length: 0", status=b"302 Found", body=b""
    )
    found, _ = await crawl_garbage({"/two": (twice, "protocol")}, caplog)
    assert outcome(found["/two"]) == "protocol"
