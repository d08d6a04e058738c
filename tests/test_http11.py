"""HTTP/1.1 edge cases through the fetcher, over real loopback sockets (issue 16, section 2).

What browsers and curl accept is accepted; what no browser reads as a response is a failure
of a kind; and what is read off the wire is bounded, not only what is decoded. The servers
are the hostile kit's (``tests/hostile.py``): :func:`~hostile.raw_server` answers each
request with given bytes, :class:`~hostile.Endless` streams until the client hangs up.
"""

from __future__ import annotations

import gzip

import pytest
import trio
from hostile import Endless, MiB, head, raw_server

from trio_crawler._exceptions import FetchError
from trio_crawler._http import Fetcher, FetchResult, decode_location
from trio_crawler._http.fetcher import NO_PROGRESS, WIRE_ALLOWANCE
from trio_crawler._http.framing import MAX_HEAD
from trio_crawler._settings import Settings
from trio_crawler.testing import Site, open_site_server

LIMIT = 20  # seconds, around every test
OK = b"<p>ok</p>"
WHOLE = head(content_type="text/html", content_length=str(len(OK))) + OK
# the kernel's socket buffers on loopback hold a few MiB the client never read
BUFFERS = 16 * MiB


def settings(**overrides: object) -> Settings:
    # request_timeout over LIMIT: a read that is not bounded shows as the test's TooSlowError
    base: dict[str, object] = {"allow_private": True, "concurrency": 4, "request_timeout": 60.0}
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


async def fetch_twice(reply: bytes, **overrides: object) -> tuple[list[FetchResult], list[int]]:
    """Two fetches answered with ``reply`` each; the results and the requests per connection."""
    with trio.fail_after(LIMIT):
        async with (
            raw_server(lambda *_: reply) as (port, seen),
            Fetcher(settings(**overrides)) as fetcher,
        ):
            results = [await fetcher.fetch(f"http://127.0.0.1:{port}/{i}") for i in range(2)]
    return results, seen


async def fetch_failure(reply: bytes) -> FetchError:
    with trio.fail_after(LIMIT):
        async with raw_server(lambda *_: reply) as (port, _), Fetcher(settings()) as fetcher:
            with pytest.raises(FetchError) as info:
                await fetcher.fetch(f"http://127.0.0.1:{port}/")
    return info.value


async def fetch_endless(handler: Endless, **overrides: object) -> FetchResult | FetchError:
    site = Site()
    site.add_raw("/", handler)
    with trio.fail_after(LIMIT):
        async with open_site_server(site) as server, Fetcher(settings(**overrides)) as fetcher:
            try:
                return await fetcher.fetch(server.url("/"))
            except FetchError as exc:
                return exc


# ------------------------------------------------------------------ status lines


@pytest.mark.parametrize("status", [b"099", b"000", b"042"])
async def test_a_status_below_100_is_a_protocol_failure(status: bytes) -> None:
    # taken as an interim answer, its body was glued to the real one's
    reply = b"HTTP/1.1 " + status + b" X\r\ncontent-length: 9\r\n\r\nATTACKER!" + WHOLE
    error = await fetch_failure(reply)
    assert error.kind.value == "protocol" and "status" in str(error)


async def test_an_interim_answer_has_no_body() -> None:
    # what follows a 1xx head is the next head: "ATTACKER!" is not one
    reply = b"HTTP/1.1 199 X\r\ncontent-length: 9\r\n\r\nATTACKER!" + WHOLE
    error = await fetch_failure(reply)
    assert error.kind.value == "protocol"


async def test_interim_answers_with_blank_lines_after_them() -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\n\r\nHTTP/1.1 103 Hints\nlink: </a>\n\n\r\n" + WHOLE
    results, seen = await fetch_twice(reply)
    assert [(r.status, r.body) for r in results] == [(200, OK)] * 2
    assert "link" not in results[0].headers
    assert seen == [2]


def padded_head(size: int) -> bytes:
    """A head of exactly ``size`` bytes, blank line included."""
    start = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nX-Pad: "
    return start + b"p" * (size - len(start) - 4) + b"\r\n\r\n"


async def test_the_head_limit_is_exact_however_the_head_arrives() -> None:
    results, _ = await fetch_twice(padded_head(MAX_HEAD) + OK)
    assert results[0].body == OK
    error = await fetch_failure(padded_head(MAX_HEAD + 1) + OK)
    assert error.kind.value == "protocol" and "head over" in str(error)


# ------------------------------------------------------------------ what browsers accept

ACCEPTED = {
    "identical-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nX-A: b\r\n"
    + b"Content-Length: 9\r\n\r\n"
    + OK,
    "a-length-list": b"HTTP/1.1 200 OK\r\nContent-Length: 9, 9\r\n\r\n" + OK,
    "a-length-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\ncontent-length: 9\r\n\r\n" + OK,
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-Folded: one\r\n two\r\n\tthree\r\nContent-Length: 9\r\n\r\n"
    + OK,
    "a-length-trailer": head(transfer_encoding="chunked")
    + b"9\r\n"
    + OK
    + b"\r\n0\r\nContent-Length: 999\r\nX-T: t\r\n\r\n",
    "bare-lf-chunks": b"HTTP/1.1 200 OK\ntransfer-encoding: chunked\n\n4\n<p>o\n5\nk</p>\n0\n\n",
    "chunk-extensions": head(transfer_encoding="chunked")
    + b"4;a=b\r\n<p>o\r\n5 ; c\r\nk</p>\r\n0;end\r\n\r\n",
    "gzip-identity": head(
        content_encoding="gzip, identity", content_length=str(len(gzip.compress(OK)))
    )
    + gzip.compress(OK),
}


@pytest.mark.parametrize("name", ACCEPTED)
async def test_what_browsers_and_curl_accept_is_accepted(name: str) -> None:
    results, seen = await fetch_twice(ACCEPTED[name])
    assert [(r.status, r.body) for r in results] == [(200, OK)] * 2
    assert seen == [2]  # and the connection was kept: the framing was read to its end
    if name == "obs-fold":
        assert results[0].headers["x-folded"] == "one two three"
    if name == "a-length-trailer":
        assert "content-length" not in results[0].headers


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nContent-Length: 8\r\n\r\n" + OK,
        b"HTTP/1.1 200 OK\r\nContent-Length: 9, 8\r\n\r\n" + OK,
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n"
        + OK
        + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: into the status line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: nul\x00\r\n\r\n",
    ],
)
async def test_conflicting_framing_stays_a_protocol_failure(reply: bytes) -> None:
    assert (await fetch_failure(reply)).kind.value == "protocol"


# ------------------------------------------------------------------ bounds on the framing

CHUNKED = head(transfer_encoding="chunked")


@pytest.mark.parametrize(
    ("start", "piece"),
    [
        (CHUNKED + b"5;ext=", b"a" * 1024),  # an endless chunk extension
        (CHUNKED, b"0"),  # a chunk size of endless leading zeros
        (CHUNKED + b"5\r\nhello\r\n0\r\nX-Long: ", b"v" * 1024),  # an endless trailer value
        (CHUNKED + b"5\r\nhello\r\n0\r\n", b"X-Field: v\r\n"),  # endless trailer fields
    ],
)
async def test_chunk_lines_and_trailers_are_bounded_like_the_head(
    start: bytes, piece: bytes
) -> None:
    # once: 149 MB of one trailer value read in 15 s, until the deadline
    handler = Endless(start, piece)
    outcome = await fetch_endless(handler)
    assert isinstance(outcome, FetchError) and outcome.kind.value == "protocol", outcome
    assert f"over {MAX_HEAD} bytes" in str(outcome)
    assert handler.sent < MAX_HEAD + BUFFERS


# ------------------------------------------------------------------ bounds on the wire


# an empty stored deflate block, not the last: what a sync flush writes, decoding to nothing
EMPTY_BLOCK = b"\x00\x00\x00\xff\xff"


NOTHING = {
    "empty-gzip-members": ("gzip", b"", gzip.compress(b"")),
    "empty-deflate-blocks": ("deflate", b"x\x9c", EMPTY_BLOCK),  # a zlib header first
    "empty-raw-deflate-blocks": ("deflate", b"", EMPTY_BLOCK),
    "zstd-skippable-frames": ("zstd", b"", b"\x50\x2a\x4d\x18\x08\x00\x00\x00" + bytes(8)),
    "a-page-then-empty-gzip-members": ("gzip", gzip.compress(OK), gzip.compress(b"")),
}


@pytest.mark.parametrize("name", NOTHING)
async def test_bytes_that_decode_to_nothing_stop_the_read(name: str) -> None:
    # once: 250 MB read for one URL until the deadline, on every retry
    encoding, start, piece = NOTHING[name]
    response = head(content_type="text/html", content_encoding=encoding, connection="close")
    handler = Endless(response + start, piece)
    result = await fetch_endless(handler)
    assert isinstance(result, FetchResult), result
    assert result.truncated and result.status == 200
    assert result.body == (OK if name.startswith("a-page") else b"")
    assert handler.sent < NO_PROGRESS + BUFFERS


async def test_what_is_read_off_the_wire_is_bounded_with_progress_too() -> None:
    # one payload byte per chunk, each chunk under a 60 KiB extension: progress, at a price
    limit = 10_000
    chunk = b"1;" + b"e" * (60 * 1024) + b"\r\nx\r\n"
    handler = Endless(CHUNKED, chunk)
    result = await fetch_endless(handler, max_body_size=limit)
    assert isinstance(result, FetchResult), result
    assert result.truncated and 0 < len(result.body) < limit
    assert handler.sent < 2 * limit + WIRE_ALLOWANCE + len(chunk) + BUFFERS


# ------------------------------------------------------------------ the body limit


BODY = b"<p>" + b"x" * 993 + b"</p>"  # 1000 bytes
EXACT = {
    "length": head(content_length=str(len(BODY))) + BODY,
    "chunked": CHUNKED + b"3e8\r\n" + BODY + b"\r\n0\r\n\r\n",
    "chunked-in-two": CHUNKED
    + b"1f4\r\n"
    + BODY[:500]
    + b"\r\n1f4\r\n"
    + BODY[500:]
    + b"\r\n0\r\n\r\n",
    "gzip": head(content_encoding="gzip", content_length=str(len(gzip.compress(BODY))))
    + gzip.compress(BODY),
}


@pytest.mark.parametrize("name", EXACT)
async def test_a_body_of_exactly_the_limit_is_not_truncated(name: str) -> None:
    results, seen = await fetch_twice(EXACT[name], max_body_size=len(BODY))
    assert [(r.body, r.truncated) for r in results] == [(BODY, False)] * 2
    assert seen == [2]  # read to its end: the connection is kept
    results, _ = await fetch_twice(EXACT[name], max_body_size=len(BODY) - 1)
    assert [(r.body, r.truncated) for r in results] == [(BODY[:-1], True)] * 2


async def test_a_body_to_the_close_of_exactly_the_limit_is_not_truncated() -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\r\n" + BODY
    with trio.fail_after(LIMIT):
        async with (
            raw_server(lambda *_: reply, close_after=True) as (port, _),
            Fetcher(settings(max_body_size=len(BODY))) as fetcher,
        ):
            result = await fetcher.fetch(f"http://127.0.0.1:{port}/")
    assert (result.body, result.truncated) == (BODY, False)


# ------------------------------------------------------------------ Location, as browsers read it


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"/caf\xc3\xa9", "/café"),  # UTF-8: read as UTF-8
        (b"/caf\xe9", "/café"),  # not UTF-8: Latin-1, as it was
        (b"/plain?q=1", "/plain?q=1"),
        (b"/\xe2\x82", "/\xe2\x82"),  # a UTF-8 sequence cut short: Latin-1
        (b"/\xf0\x9f\x90\x8d", "/\U0001f40d"),
    ],
)
def test_decode_location(raw: bytes, text: str) -> None:
    # the fetcher reads header bytes as Latin-1
    assert decode_location(raw.decode("latin-1")) == text


def test_decode_location_leaves_text_that_is_not_from_the_wire() -> None:
    assert decode_location("/\u4e2d") == "/\u4e2d"


async def test_a_raw_utf8_location_arrives_as_its_bytes() -> None:
    reply = b"HTTP/1.1 302 Found\r\nLocation: /caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n"
    results, _ = await fetch_twice(reply)
    assert decode_location(results[0].headers["location"]) == "/café"
