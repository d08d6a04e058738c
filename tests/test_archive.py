"""``--warc``: a crawl's exchanges, redirects and failures, read back with warcio's reader."""

from __future__ import annotations

import gzip
from pathlib import Path

import trio
from warcio.archiveiterator import ArchiveIterator

from trio_crawler import crawl
from trio_crawler.spiders.generic import GenericSpider
from trio_crawler.testing import (
    Response,
    loopback_settings,
    open_site_server,
    site_from_links,
)


def read_warcs(folder: Path) -> list[tuple[str, str, str | None, bytes]]:
    files = sorted(folder.glob("crawl*.warc.gz"))
    assert files
    records = []
    for path in files:
        with path.open("rb") as fh:
            for record in ArchiveIterator(fh):
                target = record.rec_headers.get_header("WARC-Target-URI") or ""
                status = record.http_headers.get_statuscode() if record.http_headers else None
                records.append((record.rec_type, target, status, record.content_stream().read()))
    return records


async def test_crawl_writes_a_readable_warc(tmp_path: Path) -> None:
    site = site_from_links({"/": ["/old", "/zipped", "/slow"], "/new": []})
    site.add("/old", Response(status=301, headers=(("location", "/new"),)))
    site.add(
        "/zipped",
        Response(
            body=gzip.compress(b"<p>compressed</p>"),
            headers=(("content-type", "text/html"), ("content-encoding", "gzip")),
        ),
    )
    site.add("/slow", Response(body=b"late", delay=5))
    warc = tmp_path / "crawl.warc.gz"
    async with open_site_server(site) as server:
        settings = loopback_settings(server, warc=str(warc), request_timeout=0.5, max_retries=0)
        with trio.fail_after(30):
            stats = await crawl(GenericSpider(start_urls=(server.url("/"),)), settings)
    assert stats.pages_ok == 3 and stats.failures == {"timeout": 1}
    records = read_warcs(tmp_path)
    kinds = [(kind, (uri or "").rsplit("/", 1)[-1], status) for kind, uri, status, _ in records]
    assert ("warcinfo", "", None) in kinds
    for name, status in (("robots.txt", "404"), ("", "200"), ("old", "301"), ("new", "200")):
        assert ("response", name, status) in kinds
        assert any(k == "request" and n == name for k, n, _ in kinds)
    zipped = next(
        body for kind, uri, _, body in records if kind == "response" and uri.endswith("/zipped")
    )
    assert zipped == b"<p>compressed</p>"  # the reader undoes the content-encoding kept as sent
    assert any(kind == "metadata" and uri.endswith("/slow") for kind, uri, _, _ in records)
