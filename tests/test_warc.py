"""The WARC writer, read back with warcio's own reader and checker (no sockets)."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from warcio.archiveiterator import ArchiveIterator

from trio_crawler import SettingsError
from trio_crawler._warc import Exchange, WarcWriter

STARTED = 1_700_000_000.25  # 2023-11-14T22:13:20.250000Z
REQUEST_HEADERS = (
    ("Host", "example.com"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("User-Agent", "trio-crawler/0.1"),
)
HTML = b"<!doctype html><title>t</title>" + b"<p>hello world</p>" * 800


def exchange(url: str = "http://example.com/", **overrides: Any) -> Exchange:
    fields: dict[str, Any] = {
        "url": url,
        "method": "GET",
        "request_headers": REQUEST_HEADERS,
        "status": 200,
        "reason": "OK",
        "http_version": "HTTP/1.1",
        "response_headers": (
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Length", str(len(HTML))),
        ),
        "payload": HTML,
        "truncated": False,
        "started": STARTED,
        "ip": "93.184.215.14",
    }
    fields.update(overrides)
    return Exchange(**fields)


def read(path: str) -> list[dict[str, Any]]:
    """Every record of one file, with what the tests look at, via warcio's ArchiveIterator."""
    out = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream):
            http = record.http_headers
            out.append(
                {
                    "type": record.rec_type,
                    "headers": dict(record.rec_headers.headers),
                    "uri": record.rec_headers.get_header("WARC-Target-URI"),
                    "id": record.rec_headers.get_header("WARC-Record-ID"),
                    "protocol": http.protocol if http else None,
                    "statusline": http.statusline if http else None,
                    "http": list(http.headers) if http else None,
                    "raw": record.raw_stream.read(),
                }
            )
    return out


def warcio_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from warcio.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_exchanges_and_failure_read_back(tmp_path: Path) -> None:
    compressed = gzip.compress(b'{"hello": "world"}' * 100)
    with WarcWriter(str(tmp_path / "crawl.warc.gz"), software="trio-crawler/test") as writer:
        writer.write_exchange(exchange())
        writer.write_exchange(
            exchange(
                "http://example.com/old",
                status=301,
                reason="Moved Permanently",
                response_headers=(("Location", "/new"), ("Content-Length", "0")),
                payload=b"",
            )
        )
        writer.write_exchange(
            exchange(
                "http://example.com/data.json?page=2#frag",
                response_headers=(
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "gzip"),
                    ("Transfer-Encoding", "chunked"),
                ),
                payload=compressed,
                ip=None,
            )
        )
        writer.write_exchange(
            exchange("http://example.com/big", payload=HTML[:1000], truncated=True)
        )
        writer.write_exchange(
            exchange("http://example.com/empty-reason", status=204, reason="", payload=b"")
        )
        writer.write_failure(
            "http://example.com/slow", "timeout", "no response in 30 s", STARTED, REQUEST_HEADERS
        )
        writer.write_failure(
            "http://nowhere.invalid/", "dns", "cannot resolve nowhere.invalid", STARTED
        )
    assert writer.paths == [str(tmp_path / "crawl.warc.gz")]  # the name given
    records = read(writer.paths[0])
    assert [r["type"] for r in records] == [
        "warcinfo",
        *["response", "request"] * 5,
        "request",
        "metadata",
        "metadata",
    ]
    for r in records:
        assert r["headers"]["WARC-Record-ID"].startswith("<urn:uuid:")
    # every file is WARC 1.1
    with gzip.open(writer.paths[0], "rb") as raw:
        assert raw.read(10) == b"WARC/1.1\r\n"

    info = records[0]
    assert info["headers"]["WARC-Filename"] == "crawl.warc.gz"
    assert b"software: trio-crawler/test\r\n" in info["raw"]
    assert b"format: WARC File Format 1.1\r\n" in info["raw"]

    # 200: response then its request, linked; the date is the request's start
    response, request = records[1], records[2]
    assert response["uri"] == request["uri"] == "http://example.com/"
    assert request["headers"]["WARC-Concurrent-To"] == response["id"]
    assert response["headers"]["WARC-Date"] == "2023-11-14T22:13:20.250000Z"
    assert request["headers"]["WARC-Date"] == response["headers"]["WARC-Date"]
    assert response["headers"]["WARC-IP-Address"] == "93.184.215.14"
    assert response["headers"]["Content-Type"] == "application/http; msgtype=response"
    assert response["headers"]["WARC-Payload-Digest"].startswith("sha1:")
    assert response["headers"]["WARC-Block-Digest"].startswith("sha1:")
    assert "WARC-Truncated" not in response["headers"]
    assert (response["protocol"], response["statusline"]) == ("HTTP/1.1", "200 OK")
    assert ("Content-Type", "text/html; charset=utf-8") in response["http"]
    assert response["raw"] == HTML
    # warcio reads a request line as protocol="GET", statusline="/ HTTP/1.1"
    assert (request["protocol"], request["statusline"]) == ("GET", "/ HTTP/1.1")
    assert request["http"] == list(REQUEST_HEADERS)
    assert request["raw"] == b""

    # 301: just a response
    redirect = records[3]
    assert redirect["uri"] == "http://example.com/old"
    assert redirect["statusline"] == "301 Moved Permanently"
    assert ("Location", "/new") in redirect["http"]
    assert redirect["raw"] == b""
    assert records[4]["headers"]["WARC-Concurrent-To"] == redirect["id"]

    # gzip-encoded: stored as sent, decoded by the reader; Transfer-Encoding renamed
    encoded, encoded_request = records[5], records[6]
    assert encoded["uri"] == "http://example.com/data.json?page=2"  # no fragment
    assert encoded["raw"] == compressed
    assert ("Content-Encoding", "gzip") in encoded["http"]
    assert ("X-Original-Transfer-Encoding", "chunked") in encoded["http"]
    assert not any(k.lower() == "transfer-encoding" for k, _ in encoded["http"])
    assert "WARC-IP-Address" not in encoded["headers"]
    assert encoded_request["statusline"] == "/data.json?page=2 HTTP/1.1"
    with open(writer.paths[0], "rb") as stream:
        bodies = [
            rec.content_stream().read()
            for rec in ArchiveIterator(stream)
            if rec.rec_type == "response"
        ]
    assert bodies[2] == b'{"hello": "world"}' * 100

    truncated = records[7]
    assert truncated["headers"]["WARC-Truncated"] == "length"
    assert truncated["raw"] == HTML[:1000]

    assert records[9]["statusline"] == "204"

    # failure with known headers: request + metadata linked to it
    failed_request, failed = records[11], records[12]
    assert failed_request["uri"] == failed["uri"] == "http://example.com/slow"
    assert failed["headers"]["WARC-Concurrent-To"] == failed_request["id"]
    assert failed["headers"]["Content-Type"] == "application/json"
    assert json.loads(failed["raw"]) == {"kind": "timeout", "message": "no response in 30 s"}
    # failure before any request was sent: metadata only
    dns = records[13]
    assert dns["uri"] == "http://nowhere.invalid/"
    assert "WARC-Concurrent-To" not in dns["headers"]
    assert json.loads(dns["raw"])["kind"] == "dns"

    # the library's own tools accept the file and its digests
    checked = warcio_cli("check", "-v", writer.paths[0])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # every record is checked and passes (the file name is printed first)
    assert checked.stdout.count("digest pass") == len(records), checked.stdout
    indexed = warcio_cli("index", "-f", "warc-type,warc-target-uri,http:status", writer.paths[0])
    assert indexed.returncode == 0, indexed.stderr
    lines = [json.loads(line) for line in indexed.stdout.splitlines()]
    assert [line["warc-type"] for line in lines] == [r["type"] for r in records]
    assert lines[3]["http:status"] == "301"


def test_request_gets_host_and_headers_stay_byte_exact(tmp_path: Path) -> None:
    with WarcWriter(str(tmp_path / "x.warc.gz")) as writer:
        writer.write_exchange(
            exchange(
                "https://user:pw@Example.COM:8443/p",
                request_headers=(("Accept", "*/*"),),
                response_headers=(("X-Name", "caf\xe9"), ("X-Bad", "a\r\nInjected: 1")),
            )
        )
    _, response, request = read(writer.paths[0])
    assert request["http"][0] == ("Host", "Example.COM:8443")
    assert ("X-Name", "caf\xe9") in response["http"]  # latin-1 byte kept, not %-encoded
    assert ("X-Bad", "a Injected: 1") in response["http"]
    assert warcio_cli("check", writer.paths[0]).returncode == 0


def test_rotation(tmp_path: Path) -> None:
    urls = [f"http://example.com/{i}" for i in range(20)]
    writer = WarcWriter(str(tmp_path / "crawl.warc.gz"), max_size=8_000)
    for url in urls:
        writer.write_exchange(exchange(url, payload=os.urandom(3_000)))
    writer.write_failure("http://example.com/failed", "connect", "refused", STARTED)
    writer.close()
    writer.close()  # idempotent
    paths = writer.paths
    assert len(paths) > 3
    # the name given first; a serial only once the size limit is reached
    assert paths == [
        str(tmp_path / "crawl.warc.gz"),
        *(str(tmp_path / f"crawl-{i:05d}.warc.gz") for i in range(1, len(paths))),
    ]
    seen = []
    for path in paths:
        records = read(path)  # each file stands alone
        assert records[0]["type"] == "warcinfo"
        assert records[0]["headers"]["WARC-Filename"] == os.path.basename(path)
        ids = {r["id"] for r in records}
        for r in records:
            if r["type"] == "request":
                assert r["headers"]["WARC-Concurrent-To"] in ids  # pair never split
        seen += [r["uri"] for r in records if r["type"] in ("response", "metadata")]
        assert warcio_cli("check", path).returncode == 0
    assert seen == [*urls, "http://example.com/failed"]
    # a file grows past max_size by at most one exchange
    assert all(os.path.getsize(p) < 8_000 + 2 * 3_500 for p in paths)


def test_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "crawl.warc.gz").write_bytes(b"old")
    (tmp_path / "crawl-00001.warc.gz").write_bytes(b"older")
    with WarcWriter(str(tmp_path / "crawl.warc.gz")) as writer:
        writer.write_exchange(exchange())
    assert writer.paths == [str(tmp_path / "crawl-00002.warc.gz")]
    assert (tmp_path / "crawl.warc.gz").read_bytes() == b"old"
    assert (tmp_path / "crawl-00001.warc.gz").read_bytes() == b"older"


def test_a_name_without_the_suffix_gets_it(tmp_path: Path) -> None:
    with WarcWriter(str(tmp_path / "crawl")) as writer:
        writer.write_exchange(exchange())
    assert writer.paths == [str(tmp_path / "crawl.warc.gz")]


def test_uncompressed(tmp_path: Path) -> None:
    with WarcWriter(str(tmp_path / "crawl.warc"), gzip=False) as writer:
        writer.write_exchange(exchange())
    assert writer.paths == [str(tmp_path / "crawl.warc")]
    assert Path(writer.paths[0]).read_bytes().startswith(b"WARC/1.1\r\n")
    assert [r["type"] for r in read(writer.paths[0])] == ["warcinfo", "response", "request"]


def test_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot write WARC file") as info:
        WarcWriter(str(tmp_path / "missing" / "crawl.warc.gz"))
    assert "\n" not in str(info.value)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(SettingsError, match="cannot write WARC file"):
        WarcWriter(str(tmp_path / "file" / "crawl.warc.gz"))  # parent is not a directory
    with pytest.raises(SettingsError, match="max size"):
        WarcWriter(str(tmp_path / "c.warc.gz"), max_size=0)
    with pytest.raises(SettingsError, match="does not end in"):
        WarcWriter(str(tmp_path / "c.warc.gz"), gzip=False)


def test_closed(tmp_path: Path) -> None:
    writer = WarcWriter(str(tmp_path / "c.warc.gz"))
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.write_exchange(exchange())
