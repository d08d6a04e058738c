"""The issue's reference point: a naive trio + selectolax crawler, on httpx or on raw h11.

Issue 8 calibrates its targets with "a naive trio + httpx + selectolax crawler of about 150
lines" (about 950 pages/s on its machine) and "the same crawler on raw h11" (about 2,100).
This is that crawler, so ``scripts/bench --vs naive-httpx`` / ``--vs naive-h11`` measure on
*this* machine, in the same run, what the issue's figures measured on its own. It is a
yardstick, not a crawler: one host, no robots.txt, no politeness, no retries, no state, no
limits against hostile servers, a plain ``set`` of URLs, and one JSON line per page.

    python scripts/bench_naive.py http://127.0.0.1:18765/ out.jsonl stats.json --client h11
"""

from __future__ import annotations

import argparse
import json
import sys
from urllib.parse import urldefrag, urljoin, urlsplit

import h11
import httpx
import trio
from selectolax.lexbor import LexborHTMLParser

TASKS = 16


async def fetch_httpx(client: httpx.AsyncClient, url: str) -> tuple[int, bytes, str]:
    r = await client.get(url)
    return r.status_code, r.content, r.headers.get("content-type", "")


class H11Connection:
    """One keep-alive HTTP/1.1 connection to one origin, on h11."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: trio.SocketStream | None = None
        self.conn = h11.Connection(h11.CLIENT)

    async def fetch(self, url: str) -> tuple[int, bytes, str]:
        if self.stream is None or self.conn.our_state is not h11.IDLE:
            if self.stream is not None:
                await self.stream.aclose()
            self.stream = await trio.open_tcp_stream(self.host, self.port)
            self.conn = h11.Connection(h11.CLIENT)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = [("Host", parts.netloc), ("User-Agent", "naive"), ("Accept", "*/*")]
        request = h11.Request(method="GET", target=target, headers=headers)
        await self.stream.send_all(
            self.conn.send(request) + (self.conn.send(h11.EndOfMessage()) or b"")
        )
        status, ctype, body = 0, "", bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                for name, value in event.headers:
                    if name == b"content-type":
                        ctype = value.decode("latin-1")
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        return status, bytes(body), ctype


async def crawl(start: str, out_path: str, client_kind: str) -> int:
    origin = urlsplit(start)
    seen = {start}
    send, receive = trio.open_memory_channel[str](float("inf"))
    send.send_nowait(start)
    pending = 1
    done = trio.Event()
    fetched = 0
    out = open(out_path, "w")  # noqa: ASYNC230, SIM115 -- a yardstick: blocking writes on purpose

    async def worker() -> None:
        nonlocal pending, fetched
        client = httpx.AsyncClient() if client_kind == "httpx" else None
        h11c = H11Connection(origin.hostname or "", origin.port or 80)
        try:
            async for url in receive:
                try:
                    if client is not None:
                        status, body, ctype = await fetch_httpx(client, url)
                    else:
                        status, body, ctype = await h11c.fetch(url)
                    fetched += 1
                    out.write(json.dumps({"url": url, "status": status}) + "\n")
                    if status == 200 and "html" in ctype:
                        for node in LexborHTMLParser(body).css("a[href]"):
                            href = node.attributes.get("href")
                            if not href:
                                continue
                            link = urldefrag(urljoin(url, href))[0]
                            parts = urlsplit(link)
                            if parts.netloc != origin.netloc or link in seen:
                                continue
                            if parts.path.startswith("/private/"):  # the site's robots.txt
                                continue
                            seen.add(link)
                            pending += 1
                            send.send_nowait(link)
                except (httpx.HTTPError, OSError, h11.ProtocolError) as exc:
                    fetched += 1
                    out.write(json.dumps({"url": url, "error": type(exc).__name__}) + "\n")
                    h11c = H11Connection(origin.hostname or "", origin.port or 80)
                pending -= 1
                if pending == 0:
                    done.set()
        finally:
            if client is not None:
                await client.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(TASKS):
            nursery.start_soon(worker)
        await done.wait()
        nursery.cancel_scope.cancel()
    out.close()
    return fetched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("start")
    parser.add_argument("out")
    parser.add_argument("stats")
    parser.add_argument("--client", choices=["httpx", "h11"], default="httpx")
    args = parser.parse_args(argv)
    fetched = trio.run(crawl, args.start, args.out, args.client)
    with open(args.stats, "w") as f:
        json.dump({"requests": fetched}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
